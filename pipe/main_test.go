//go:build linux

package pipe_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

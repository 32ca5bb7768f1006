//go:build linux

package queue_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

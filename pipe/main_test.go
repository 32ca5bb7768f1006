package pipe_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

//go:build linux

package pool_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

var (
	square = pool.Register("test.square", func(ctx context.Context, x int) (int, error) { return x * x, nil })
	ident  = pool.Register("test.ident", func(ctx context.Context, x int) (int, error) { return x, nil })
	pid    = pool.Register("test.pid", func(ctx context.Context, _ int) (int, error) { return os.Getpid(), nil })
	failAt = pool.Register("test.failAt", func(ctx context.Context, x int) (int, error) {
		if x%7 == 3 {
			return 0, fmt.Errorf("bad %d", x)
		}
		return x, nil
	})
	panicky = pool.Register("test.panic", func(ctx context.Context, x int) (int, error) {
		if x == 2 {
			panic("boom")
		}
		return x, nil
	})
	exitWith = pool.Register("test.exit", func(ctx context.Context, code int) (int, error) {
		if code >= 0 {
			os.Exit(code)
		}
		return os.Getpid(), nil
	})
	killSelf = pool.Register("test.kill", func(ctx context.Context, x int) (int, error) {
		if x == 5 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return x, nil
	})
	sleepy = pool.Register("test.sleep", func(ctx context.Context, d time.Duration) (time.Duration, error) {
		select {
		case <-time.After(d):
			return d, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
)

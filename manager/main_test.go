package manager_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	process.Init()
	// Under -race every process sleeps a second at exit so that racing
	// goroutines can report (GORACE atexit_sleep_ms); the children of
	// these tests are many and short-lived. Their reports still fail the
	// tests: a child with a race exits with code 66.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	if code == 0 {
		if kids := process.ActiveChildren(); len(kids) > 0 {
			os.Stderr.WriteString("manager tests: child processes outlived the run\n")
			code = 1
		}
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("manager tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start starts a manager server for one test; at the end of the test the
// server must stop cleanly (a race report in it would fail Close).
func start(t testing.TB, opts ...manager.Option) *manager.Manager {
	t.Helper()
	m, err := manager.Start(ctxT(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	return m
}

// startToKill starts a server the test will kill.
func startToKill(t testing.TB) *manager.Manager {
	t.Helper()
	m, err := manager.Start(ctxT(t))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

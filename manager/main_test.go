package manager_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	process.Init()
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

// start starts a manager server for one test.
func start(t testing.TB, opts ...manager.Option) *manager.Manager {
	t.Helper()
	m, err := manager.Start(ctxT(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

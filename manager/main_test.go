package manager_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
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

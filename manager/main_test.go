//go:build linux

package manager_test

import (
	"testing"

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

// start starts a manager server for one test; at the end of the test the
// server must stop cleanly (a race report in it would fail Close).
func start(t testing.TB, opts ...manager.Option) *manager.Manager {
	t.Helper()
	m, err := manager.Start(testbin.Context(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	return m
}

// startToKill starts a server the test will kill.
func startToKill(t testing.TB) *manager.Manager {
	t.Helper()
	m, err := manager.Start(testbin.Context(t))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

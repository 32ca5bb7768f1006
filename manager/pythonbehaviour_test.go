//go:build linux

package manager_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPythonManagerBehaviour checks behaviours of Python's managers that
// CPython's test_multiprocessing checks too: a proxy read back from a
// container is the same shared object, so writes through it are seen by
// every other proxy (nested managed objects, bpo-6766); calling a method
// whose name is not exported (Python: starts with an underscore) is
// refused; a client in another process connects to a TCP server with the
// server's authkey (test_remote); and a server restarted at once on the
// same address accepts connections (test_rapid_restart).
func TestPythonManagerBehaviour(t *testing.T) {
	ctx := testbin.Context(t)
	t.Run("nested proxies see writes through their parents", func(t *testing.T) {
		m := start(t)
		outer, err := manager.NewList[*manager.Dict[string, int]](ctx, m)
		require.NoError(t, err)
		inner, err := manager.NewDict[string, int](ctx, m)
		require.NoError(t, err)
		require.NoError(t, outer.Append(ctx, inner))
		viaParent, err := outer.Get(ctx, 0)
		require.NoError(t, err)
		require.NoError(t, viaParent.Set(ctx, "written", 1))
		v, ok, err := inner.Get(ctx, "written")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, 1, v)
	})
	t.Run("a private method is refused", func(t *testing.T) {
		m := start(t)
		c, err := manager.NewObject(ctx, m, "test.counter")
		require.NoError(t, err)
		var n int
		assert.ErrorIs(t, c.Call(ctx, "private", &n), manager.ErrNoMethod)
		assert.ErrorIs(t, c.Call(ctx, "_h", &n), manager.ErrNoMethod)
	})
	t.Run("a remote client with an authkey works from another process", func(t *testing.T) {
		key := []byte("conformance")
		addr, _ := serveRemote(t, key)
		runChildren(t, ctx, addNamed, connectArg{Network: "tcp", Addr: addr, Key: key, Name: "remote", N: 3})
		m, err := manager.Connect(ctx, "tcp", addr, key)
		require.NoError(t, err)
		defer m.Close()
		d, err := manager.NewDict[string, int](ctx, m, manager.Named("remote"))
		require.NoError(t, err)
		v, _, err := d.Get(ctx, "n")
		require.NoError(t, err)
		assert.Equal(t, 3, v)
	})
	t.Run("rapid restart on the same address", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sock")
		for range 5 {
			m, err := manager.Start(ctx, manager.WithAddress("unix", path))
			require.NoError(t, err)
			_, err = manager.NewLock(ctx, m)
			require.NoError(t, err)
			require.NoError(t, m.Close())
		}
	})
}

// TestNoDescriptorLeak: starting, using and closing managers, connections
// and proxies leaves no descriptor open in this process, nor a socket
// directory behind.
func TestNoDescriptorLeak(t *testing.T) {
	ctx := testbin.Context(t)
	// A first round opens what the process keeps open for good (the
	// runtime's poller, say), so that the count compares like with like
	// when this test runs alone.
	warm, err := manager.Start(ctx)
	require.NoError(t, err)
	require.NoError(t, warm.Close())
	runtime.GC()
	before := testbin.FDCount(t)
	var dirs []string
	for range 3 {
		m, err := manager.Start(ctx)
		require.NoError(t, err)
		dirs = append(dirs, manager.SocketDir(m))
		network, addr := m.Address()
		c, err := manager.Connect(ctx, network, addr, nil)
		require.NoError(t, err)
		d, err := manager.NewDict[string, *manager.List[int]](ctx, c)
		require.NoError(t, err)
		l, err := manager.NewList[int](ctx, m)
		require.NoError(t, err)
		require.NoError(t, d.Set(ctx, "l", l))
		shared, err := manager.NewDict[string, int](ctx, m)
		require.NoError(t, err)
		runChildren(t, ctx, useLater, shared)
		require.NoError(t, c.Close())
		require.NoError(t, m.Close())
	}
	runtime.GC()
	assert.Equal(t, before, testbin.FDCount(t))
	// Each manager's own directory (other processes on the machine may
	// have theirs meanwhile).
	for _, dir := range dirs {
		_, err := os.Stat(dir)
		assert.True(t, errors.Is(err, fs.ErrNotExist), "socket directory %s left: %v", dir, err)
	}
}

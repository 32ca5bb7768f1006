//go:build linux

package manager_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type serveArg struct {
	Network, Addr string
	Key           []byte
	Report        *pipe.Conn
}

// serveChild runs Serve in a child process and reports its address; it
// serves until interrupted.
var serveChild = process.Register("test.serve", func(ctx context.Context, a serveArg) error {
	err := manager.Serve(ctx, a.Network, a.Addr, a.Key, manager.WithListening(func(_, addr string) {
		a.Report.Send(addr)
	}))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
})

// serveRemote starts a TCP server in a child process.
func serveRemote(t *testing.T, key []byte) (addr string, stop func()) {
	t.Helper()
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	p := process.New(serveChild, serveArg{Network: "tcp", Addr: "127.0.0.1:0", Key: key, Report: b})
	require.NoError(t, p.Start())
	b.Close()
	require.NoError(t, a.Recv(&addr))
	a.Close()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			require.NoError(t, p.Interrupt())
			require.NoError(t, p.Join(context.Background()))
		})
	}
	t.Cleanup(stop)
	return addr, stop
}

type connectArg struct {
	Network, Addr string
	Key           []byte
	Name          string
	N             int
}

// addNamed connects by address and adds 1, N times, to key "n" of the
// dict named Name: it shares nothing with the parent but the address.
var addNamed = process.Register("test.addNamed", func(ctx context.Context, a connectArg) error {
	m, err := manager.Connect(ctx, a.Network, a.Addr, a.Key)
	if err != nil {
		return err
	}
	defer m.Close()
	d, err := manager.NewDict[string, int](ctx, m, manager.Named(a.Name))
	if err != nil {
		return err
	}
	for range a.N {
		if _, err := d.Add(ctx, "n", 1); err != nil {
			return err
		}
	}
	return nil
})

// TestRemoteTCP: Serve in one process over 127.0.0.1 TCP, Connect from
// this one and from two others (Python's remote managers), all sharing a
// Named dict.
func TestRemoteTCP(t *testing.T) {
	ctx := testbin.Context(t)
	key := []byte("remote secret")
	addr, stop := serveRemote(t, key)
	m, err := manager.Connect(ctx, "tcp", addr, key)
	require.NoError(t, err)
	defer m.Close()
	d, err := manager.NewDict[string, int](ctx, m, manager.Named("shared"))
	require.NoError(t, err)
	arg := connectArg{Network: "tcp", Addr: addr, Key: key, Name: "shared", N: 25}
	runChildren(t, ctx, addNamed, arg, arg)
	v, _, err := d.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, 50, v)

	_, err = manager.Connect(ctx, "tcp", addr, []byte("wrong"))
	assert.ErrorIs(t, err, manager.ErrAuth)

	// Proxies from a remote manager travel to children too.
	q, err := manager.NewQueue[string](ctx, m, 0)
	require.NoError(t, err)
	runChildren(t, ctx, putHello, q)
	s, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "hello", s)

	stop()
	_, err = d.Len(ctx)
	assert.ErrorIs(t, err, manager.ErrDisconnected)
}

var putHello = process.Register("test.putHello", func(ctx context.Context, q *manager.Queue[string]) error {
	return q.Put(ctx, "hello")
})

func TestServeTCPNeedsAuthKey(t *testing.T) {
	ctx := testbin.Context(t)
	err := manager.Serve(ctx, "tcp", "127.0.0.1:0", []byte{})
	assert.ErrorIs(t, err, manager.ErrNoAuthKey)
	_, err = manager.Start(ctx, manager.WithAddress("tcp", "127.0.0.1:0"), manager.WithAuthKey([]byte{}))
	assert.ErrorIs(t, err, manager.ErrNoAuthKey)
}

// TestStartTCP: a started server on TCP.
func TestStartTCP(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t, manager.WithAddress("tcp", "127.0.0.1:0"))
	network, addr := m.Address()
	assert.Equal(t, "tcp", network)
	assert.NotContains(t, addr, ":0")
	v, err := manager.NewValue(ctx, m, "x")
	require.NoError(t, err)
	s, err := v.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "x", s)
}

// TestServeInProcess: Serve in this process, stopped by its ctx.
func TestServeInProcess(t *testing.T) {
	ctx := testbin.Context(t)
	sctx, cancel := context.WithCancel(ctx)
	addr := filepath.Join(t.TempDir(), "sock")
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- manager.Serve(sctx, "unix", addr, nil, manager.WithListening(func(string, string) { close(ready) }))
	}()
	<-ready
	m, err := manager.Connect(ctx, "unix", addr, nil)
	require.NoError(t, err)
	l, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, l.Append(ctx, 1))
	blocked := make(chan error, 1)
	q, err := manager.NewQueue[int](ctx, m, 0)
	require.NoError(t, err)
	go func() { _, err := q.Get(ctx); blocked <- err }()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.ErrorIs(t, <-blocked, manager.ErrDisconnected)
	require.NoError(t, m.Close())
	_, err = os.Stat(addr)
	assert.True(t, os.IsNotExist(err), "socket removed")
}

// TestSocketDirectory: a started server's socket lives in a private
// directory, removed at Close.
func TestSocketDirectory(t *testing.T) {
	ctx := testbin.Context(t)
	m, err := manager.Start(ctx)
	require.NoError(t, err)
	network, addr := m.Address()
	assert.Equal(t, "unix", network)
	st, err := os.Stat(filepath.Dir(addr))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(addr)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, st.Mode().Type())
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "idempotent")
	_, err = os.Stat(filepath.Dir(addr))
	assert.True(t, os.IsNotExist(err), "directory removed")
	assert.Empty(t, process.ActiveChildren(), "server process joined")
}

// TestNamedWrongKind: a name belongs to one kind.
func TestNamedWrongKind(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	_, err := manager.NewDict[string, int](ctx, m, manager.Named("x"))
	require.NoError(t, err)
	_, err = manager.NewList[int](ctx, m, manager.Named("x"))
	assert.ErrorIs(t, err, manager.ErrWrongKind)
}

// TestNamedUnrelatedConnections: processes that share only the address
// find the same Named dict.
func TestNamedUnrelatedConnections(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	network, addr := m.Address()
	arg := connectArg{Network: network, Addr: addr, Name: "counter", N: 20}
	runChildren(t, ctx, addNamed, arg, arg, arg)
	d, err := manager.NewDict[string, int](ctx, m, manager.Named("counter"))
	require.NoError(t, err)
	v, _, err := d.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, 60, v)
}

// TestRapidRestart: a server can be restarted on the same address at once
// (CPython's _TestManagerRestart), unix and TCP.
func TestRapidRestart(t *testing.T) {
	ctx := testbin.Context(t)
	path := filepath.Join(t.TempDir(), "sock")
	var tcpAddr string
	for i := range 3 {
		m, err := manager.Start(ctx, manager.WithAddress("unix", path))
		require.NoError(t, err)
		v, err := manager.NewValue(ctx, m, i)
		require.NoError(t, err)
		got, err := v.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, got)
		require.NoError(t, m.Close())

		if tcpAddr == "" {
			tcpAddr = "127.0.0.1:0"
		}
		m, err = manager.Start(ctx, manager.WithAddress("tcp", tcpAddr))
		require.NoError(t, err)
		_, tcpAddr = m.Address()
		_, err = manager.NewValue(ctx, m, i)
		require.NoError(t, err)
		require.NoError(t, m.Close())
	}
}

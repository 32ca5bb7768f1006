//go:build linux

package manager_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// objects returns the server's live object count.
func objects(t testing.TB, ctx context.Context, m *manager.Manager) int {
	t.Helper()
	n, _, _, err := manager.Stats(ctx, m)
	require.NoError(t, err)
	return n
}

// settles waits until the server holds want objects (references are given
// back asynchronously).
func settles(t testing.TB, ctx context.Context, m *manager.Manager, want int) {
	t.Helper()
	waitFor(t, ctx, func() bool { return objects(t, ctx, m) == want })
}

func TestLifetimeClose(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	assert.Equal(t, 1, objects(t, ctx, m))
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "idempotent")
	settles(t, ctx, m, 0)
	assert.ErrorIs(t, d.Set(ctx, "k", 1), manager.ErrClosed)
}

// TestLifetimeGC: proxies nobody closed are released when the garbage
// collector finds them unreachable.
func TestLifetimeGC(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	func() {
		for range 10 {
			_, err := manager.NewList[int](ctx, m)
			require.NoError(t, err)
		}
	}()
	waitFor(t, ctx, func() bool { runtime.GC(); return objects(t, ctx, m) == 0 })
}

// TestLifetimeSharedProxies: several proxies to one object in a process
// (here: fetched from a stored value) keep it alive until the last goes.
func TestLifetimeNested(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	outer, err := manager.NewDict[string, *manager.List[int]](ctx, m)
	require.NoError(t, err)
	inner, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, outer.Set(ctx, "l", inner))
	require.NoError(t, inner.Close())
	settles(t, ctx, m, 2) // the stored value keeps the list
	got, ok, err := outer.Get(ctx, "l")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, got.Append(ctx, 1))
	again, _, err := outer.Get(ctx, "l")
	require.NoError(t, err)
	require.NoError(t, outer.Delete(ctx, "l"))
	require.NoError(t, got.Close())
	n, err := again.Len(ctx) // a second proxy of the same object still works
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, again.Close())
	settles(t, ctx, m, 1)
	// Freeing a container frees what only it referred to.
	l2, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, outer.Set(ctx, "l2", l2))
	require.NoError(t, l2.Close())
	require.NoError(t, outer.Close())
	settles(t, ctx, m, 0)
}

type ownArg struct {
	M     string // address
	Net   string
	Ready *pipe.Conn
}

// createAndHold connects, creates objects, reports, and waits to be
// killed.
var createAndHold = process.Register("test.createAndHold", func(ctx context.Context, a ownArg) error {
	m, err := manager.Connect(ctx, a.Net, a.M, nil)
	if err != nil {
		return err
	}
	var keep []any
	for range 5 {
		d, err := manager.NewDict[int, int](ctx, m)
		if err != nil {
			return err
		}
		keep = append(keep, d)
	}
	if err := a.Ready.Send(len(keep)); err != nil {
		return err
	}
	<-ctx.Done()
	runtime.KeepAlive(keep)
	return nil
})

// TestLifetimeProcessDeath: the references of a process that dies go with
// its connection.
func TestLifetimeProcessDeath(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	network, addr := m.Address()
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(createAndHold, ownArg{M: addr, Net: network, Ready: b})
	require.NoError(t, p.Start())
	b.Close()
	var n int
	require.NoError(t, a.Recv(&n))
	assert.Equal(t, 5, objects(t, ctx, m))
	require.NoError(t, p.Kill())
	assert.Error(t, p.Join(ctx))
	settles(t, ctx, m, 0)
}

var useLater = process.Register("test.useLater", func(ctx context.Context, d *manager.Dict[string, int]) error {
	runtime.GC() // nothing here may free the object either
	_, err := d.Add(ctx, "child", 1)
	return err
})

// TestLifetimeTransfer: a proxy passed to a child keeps its object alive
// even when the parent drops its own proxy as soon as Start returns; once
// the child is gone and nobody refers to the object, it is freed.
func TestLifetimeTransfer(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	p := process.New(useLater, d)
	require.NoError(t, p.Start())
	require.NoError(t, d.Close())
	require.NoError(t, p.Join(ctx))
	settles(t, ctx, m, 0)
	_, _, tokens, err := manager.Stats(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, 0, tokens)
}

// TestLifetimeNamed: a Named object outlives its proxies.
func TestLifetimeNamed(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m, manager.Named("kept"))
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "k", 7))
	require.NoError(t, d.Close())
	runtime.GC()
	d2, err := manager.NewDict[string, int](ctx, m, manager.Named("kept"))
	require.NoError(t, err)
	v, _, err := d2.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	require.NoError(t, d2.Close())
	assert.Equal(t, 1, objects(t, ctx, m))
}

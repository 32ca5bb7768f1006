//go:build linux

package manager_test

import (
	"context"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allProxies is one proxy of every kind, as a process argument.
type allProxies struct {
	Dict     *manager.Dict[string, int]
	List     *manager.List[string]
	Value    *manager.Value[int]
	Array    *manager.Array[int]
	NS       *manager.Namespace
	Queue    *manager.Queue[int]
	Joinable *manager.Joinable[string]
	Sync     syncSet
}

func newAll(t *testing.T, ctx context.Context, m *manager.Manager) allProxies {
	t.Helper()
	var a allProxies
	var err error
	a.Dict, err = manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	a.List, err = manager.NewList[string](ctx, m)
	require.NoError(t, err)
	a.Value, err = manager.NewValue(ctx, m, 0)
	require.NoError(t, err)
	a.Array, err = manager.NewArray(ctx, m, []int{1, 2, 3})
	require.NoError(t, err)
	a.NS, err = manager.NewNamespace(ctx, m)
	require.NoError(t, err)
	a.Queue, err = manager.NewQueue[int](ctx, m, 2)
	require.NoError(t, err)
	a.Joinable, err = manager.NewJoinable[string](ctx, m, 0)
	require.NoError(t, err)
	a.Sync.Lock, err = manager.NewLock(ctx, m)
	require.NoError(t, err)
	a.Sync.RLock, err = manager.NewRLock(ctx, m)
	require.NoError(t, err)
	a.Sync.Sem, err = manager.NewSemaphore(ctx, m, 2)
	require.NoError(t, err)
	a.Sync.BSem, err = manager.NewBoundedSemaphore(ctx, m, 1)
	require.NoError(t, err)
	a.Sync.Cond, err = manager.NewCondition(ctx, m, nil)
	require.NoError(t, err)
	a.Sync.Event, err = manager.NewEvent(ctx, m)
	require.NoError(t, err)
	a.Sync.Bar, err = manager.NewBarrier(ctx, m, 1)
	require.NoError(t, err)
	return a
}

func runAll(ctx context.Context, a allProxies) error {
	for _, f := range []func() error{
		func() error { return exerciseDict(ctx, a.Dict) },
		func() error { return exerciseList(ctx, a.List) },
		func() error { return exerciseValue(ctx, a.Value, a.Array, a.NS) },
		func() error { return exerciseQueue(ctx, a.Queue, a.Joinable) },
		func() error { return exerciseSync(ctx, a.Sync) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

var childExercise = process.Register("test.exercise", func(ctx context.Context, a allProxies) error {
	return runAll(ctx, a)
})

func TestEveryProxyInParent(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	a := newAll(t, ctx, m)
	require.NoError(t, runAll(ctx, a))
	require.NoError(t, exerciseDictKinds(ctx, m))
}

// TestEveryProxyInChild passes one proxy of every kind to a child, which
// runs every method on them; the parent then sees what the child left.
func TestEveryProxyInChild(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	a := newAll(t, ctx, m)
	p := process.New(childExercise, a)
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctx))

	items, err := a.Dict.Items(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 10, "b": 20, "n": 4, "fresh": 1}, items)
	all, err := a.List.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c", "d"}, all)
	v, err := a.Value.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 11, v)
	arr, err := a.Array.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{5, 20, 13}, arr)
	var name string
	require.NoError(t, a.NS.Get(ctx, "name", &name))
	assert.Equal(t, "gopher", name)
	ok, err := a.Sync.Lock.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "the child left the lock unlocked")
	// The child's connection is gone and released its references: every
	// object is still alive through the parent's proxies.
	objs, _, _, err := manager.Stats(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, 15, objs) // 14 proxies + the Condition's own lock
}

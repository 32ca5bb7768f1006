//go:build linux

package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type point struct {
	X, Y int
	Tag  string
}

func TestDictMethods(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	d, err := cluster.OpenDict[point, string](ctx, c, "d")
	require.NoError(t, err)
	defer d.Close()
	k1, k2 := point{1, 2, "a b/c.*>"}, point{-3, 4, ""}
	_, ok, err := d.Get(ctx, k1)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, d.Set(ctx, k1, "one"))
	require.NoError(t, d.Update(ctx, map[point]string{k2: "two"}))
	v, ok, err := d.Get(ctx, k1)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "one", v)
	n, err := d.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	keys, err := d.Keys(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []point{k1, k2}, keys)
	items, err := d.Items(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[point]string{k1: "one", k2: "two"}, items)
	v, err = d.SetDefault(ctx, k1, "other")
	require.NoError(t, err)
	assert.Equal(t, "one", v)
	v, ok, err = d.Pop(ctx, k2)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "two", v)
	_, ok, err = d.Pop(ctx, k2)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, d.Delete(ctx, k2), "deleting a missing key")
	swapped, err := d.CompareAndSwap(ctx, k1, "nope", "x")
	require.NoError(t, err)
	assert.False(t, swapped)
	swapped, err = d.CompareAndSwap(ctx, k1, "one", "uno")
	require.NoError(t, err)
	assert.True(t, swapped)
	swapped, err = d.CompareAndSwap(ctx, k2, "", "from zero")
	require.NoError(t, err)
	assert.True(t, swapped, "a missing key matches the zero value")
	require.NoError(t, d.Clear(ctx))
	n, err = d.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	require.NoError(t, cluster.DeleteDict(ctx, c, "d"))
	require.NoError(t, cluster.DeleteDict(ctx, c, "d"))
}

func TestDictAdd(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	d, err := cluster.OpenDict[string, int8](ctx, c, "n")
	require.NoError(t, err)
	v, err := d.Add(ctx, "k", 100)
	require.NoError(t, err)
	assert.Equal(t, int8(100), v)
	_, err = d.Add(ctx, "k", 100)
	assert.ErrorIs(t, err, manager.ErrOverflow)
	v, _, _ = d.Get(ctx, "k")
	assert.Equal(t, int8(100), v, "a failed Add changes nothing")
	f, err := cluster.OpenDict[string, float64](ctx, c, "f")
	require.NoError(t, err)
	x, err := f.Add(ctx, "k", 0.5)
	require.NoError(t, err)
	assert.Equal(t, 0.5, x)
	x, err = f.Add(ctx, "k", 0.25)
	require.NoError(t, err)
	assert.Equal(t, 0.75, x)
	s, err := cluster.OpenDict[string, string](ctx, c, "s")
	require.NoError(t, err)
	_, err = s.Add(ctx, "k", "a")
	assert.ErrorIs(t, err, manager.ErrNotNumber)
}

type dictArg struct {
	URL, Name string
	N         int
	ID        int
}

// adder adds 1 to "count" N times, and races for "first" with
// SetDefault and for "cas" with CompareAndSwap.
var adder = process.Register("cluster.adder", func(ctx context.Context, a dictArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := cluster.OpenDict[string, int](ctx, c, a.Name)
	if err != nil {
		return err
	}
	for range a.N {
		if _, err := d.Add(ctx, "count", 1); err != nil {
			return err
		}
	}
	first, err := d.SetDefault(ctx, "first", a.ID)
	if err != nil {
		return err
	}
	if _, err := d.Add(ctx, fmt.Sprintf("saw-%d", first), 1); err != nil {
		return err
	}
	// Each process moves "cas" from whatever it reads to that plus 1000,
	// retrying on a lost race: the end value counts every success.
	for {
		cur, _, err := d.Get(ctx, "cas")
		if err != nil {
			return err
		}
		ok, err := d.CompareAndSwap(ctx, "cas", cur, cur+1000)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
})

func TestDictAcrossProcesses(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	const procs, n = 4, 250
	var ps []*process.Process
	for i := range procs {
		p := process.New(adder, dictArg{URL: s.URL(), Name: "shared", N: n, ID: i + 1})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
	d, err := cluster.OpenDict[string, int](ctx, c, "shared")
	require.NoError(t, err)
	count, _, err := d.Get(ctx, "count")
	require.NoError(t, err)
	assert.Equal(t, procs*n, count, "every Add counted once")
	first, ok, err := d.Get(ctx, "first")
	require.NoError(t, err)
	require.True(t, ok)
	saw, _, err := d.Get(ctx, fmt.Sprintf("saw-%d", first))
	require.NoError(t, err)
	assert.Equal(t, procs, saw, "every SetDefault returned the one winner")
	cas, _, err := d.Get(ctx, "cas")
	require.NoError(t, err)
	assert.Equal(t, procs*1000, cas, "every successful CompareAndSwap counted once")
}

func TestDictPopRace(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	d, err := cluster.OpenDict[int, int](ctx, c, "pop")
	require.NoError(t, err)
	for i := range 50 {
		require.NoError(t, d.Set(ctx, i, i))
	}
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c2 := connect(t, s.URL())
			d2, err := cluster.OpenDict[int, int](ctx, c2, "pop")
			if !assert.NoError(t, err) {
				return
			}
			for i := range 50 {
				_, ok, err := d2.Pop(ctx, i)
				if !assert.NoError(t, err) {
					return
				}
				if ok {
					mu.Lock()
					got[i]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, got, 50)
	for i, n := range got {
		assert.Equal(t, 1, n, "key %d popped %d times", i, n)
	}
}

func TestDictWatch(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	d, err := cluster.OpenDict[string, int](ctx, c, "w")
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "before", 1)) // not a change after Watch
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := d.Watch(wctx)
	for i := range 20 {
		require.NoError(t, d.Set(ctx, fmt.Sprint("k", i%3), i))
	}
	require.NoError(t, d.Delete(ctx, "k1"))
	var seen []cluster.Change[string, int]
	for ch, err := range changes {
		require.NoError(t, err)
		seen = append(seen, ch)
		if len(seen) == 21 {
			break
		}
	}
	for i := range 20 {
		assert.Equal(t, cluster.Change[string, int]{Key: fmt.Sprint("k", i%3), Value: i}, seen[i])
	}
	assert.Equal(t, cluster.Change[string, int]{Key: "k1", Deleted: true}, seen[20])
	// Cancelling ends the sequence.
	cancel()
	done := make(chan struct{})
	go func() {
		for range changes {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(testbin.Timeout):
		t.Fatal("Watch did not end with its ctx")
	}
}

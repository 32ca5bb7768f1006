//go:build linux

package pool_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPythonPoolConformance ports the checks of CPython's _TestPool and
// _TestPoolWorkerLifetime (Lib/test/_test_multiprocessing.py) that apply
// to a Go pool, and adds the one Python fails: a SIGKILLed worker
// (bpo-22393, where Python's Pool hangs).
func TestPythonPoolConformance(t *testing.T) {
	p := newPool(t, pool.Workers(4))
	ctx := testbin.Context(t)
	t.Run("map, imap and starmap in order", func(t *testing.T) {
		res, err := pool.Map(ctx, p, square, ints(100), pool.Chunksize(7))
		require.NoError(t, err)
		var seq []int
		for r, err := range pool.Imap(ctx, p, square, ints(100)) {
			require.NoError(t, err)
			seq = append(seq, r)
		}
		assert.Equal(t, res, seq)
		for i, r := range res {
			assert.Equal(t, i*i, r)
		}
		sums, err := pool.Map(ctx, p, add, []pair{{1, 2, ""}, {3, 4, ""}})
		require.NoError(t, err)
		assert.Equal(t, 3, sums[0].Sum)
		assert.Equal(t, 7, sums[1].Sum)
	})
	t.Run("imap_unordered as a set", func(t *testing.T) {
		var got []int
		for r, err := range pool.ImapUnordered(ctx, p, square, ints(100), pool.Chunksize(1)) {
			require.NoError(t, err)
			got = append(got, r)
		}
		slices.Sort(got)
		want, _ := pool.Map(ctx, p, square, ints(100))
		assert.Equal(t, want, got)
	})
	t.Run("an error in the input propagates and the pool is reused", func(t *testing.T) {
		_, err := pool.Map(ctx, p, anyEcho, []any{1, func() {}})
		require.Error(t, err)
		r, err := pool.Apply(ctx, p, square, 9)
		require.NoError(t, err)
		assert.Equal(t, 81, r)
	})
	t.Run("get(timeout) times out after about the timeout", func(t *testing.T) {
		ar := pool.ApplyAsync(p, sleepy, 500*time.Millisecond)
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ar.Get(tctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.InDelta(t, 100*time.Millisecond, time.Since(start), float64(90*time.Millisecond))
		require.NoError(t, ar.Wait(ctx))
	})
	t.Run("Pool(0) and bad maxtasksperchild raise", func(t *testing.T) {
		for _, o := range []pool.Option{pool.Workers(0), pool.Workers(-1), pool.MaxTasksPerChild(0), pool.MaxTasksPerChild(-1)} {
			_, err := pool.New(o)
			require.ErrorIs(t, err, pool.ErrInvalidOption)
		}
	})
	t.Run("worker pids change under maxtasksperchild", func(t *testing.T) {
		q := newPool(t, pool.Workers(2), pool.MaxTasksPerChild(10))
		res, err := pool.Map(ctx, q, pid, ints(100), pool.Chunksize(1))
		require.NoError(t, err)
		distinct := map[int]bool{}
		for _, r := range res {
			distinct[r] = true
		}
		assert.GreaterOrEqual(t, len(distinct), 10)
	})
	t.Run("terminate with 10k queued tasks returns promptly", func(t *testing.T) {
		q, err := pool.New(pool.Workers(2))
		require.NoError(t, err)
		ar := pool.MapAsync(q, sleepy, slices.Repeat([]time.Duration{time.Second}, 10000), pool.Chunksize(1))
		start := time.Now()
		require.NoError(t, q.Terminate())
		require.NoError(t, q.Join(ctx))
		assert.Less(t, time.Since(start), time.Second)
		_, err = ar.Get(ctx)
		require.ErrorIs(t, err, pool.ErrTerminated)
	})
	t.Run("a SIGKILLed worker fails only its task and the pool goes on", func(t *testing.T) {
		_, err := pool.Apply(ctx, p, killSelf, 5)
		var wd *pool.WorkerDiedError
		require.ErrorAs(t, err, &wd)
		assert.Contains(t, err.Error(), "signal 9")
		r, err := pool.Apply(ctx, p, square, 4)
		require.NoError(t, err)
		assert.Equal(t, 16, r)
	})
}

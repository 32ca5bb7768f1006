//go:build linux

package pool_test

import (
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNoDescriptorLeak(t *testing.T) {
	before := testbin.FDCount(t)
	for range 3 {
		p, err := pool.New(pool.Workers(2), pool.TaskTimeout(time.Second))
		require.NoError(t, err)
		_, err = pool.Map(testbin.Context(t), p, square, ints(100))
		require.NoError(t, err)
		_, err = pool.Apply(testbin.Context(t), p, exitWith, 3)
		require.Error(t, err)
		require.NoError(t, p.Close())
		require.NoError(t, p.Join(testbin.Context(t)))
	}
	p, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	pool.ApplyAsync(p, sleepy, time.Hour)
	require.NoError(t, p.Terminate())
	require.NoError(t, p.Join(testbin.Context(t)))
	assert.Equal(t, before, testbin.FDCount(t))
	assert.Empty(t, process.ActiveChildren())
}

func TestDefaultWorkers(t *testing.T) {
	p := newPool(t)
	args := make([]time.Duration, 4*process.CPUCount())
	for i := range args {
		args[i] = 30 * time.Millisecond
	}
	ctx := testbin.Context(t)
	pids := map[int]bool{}
	for range pool.Imap(ctx, p, sleepy, args, pool.Chunksize(1)) {
	}
	res, err := pool.Map(ctx, p, pid, ints(50*process.CPUCount()), pool.Chunksize(1))
	require.NoError(t, err)
	for _, r := range res {
		pids[r] = true
	}
	assert.LessOrEqual(t, len(pids), process.CPUCount())
	assert.Len(t, process.ActiveChildren(), process.CPUCount())
}

func TestLargePool(t *testing.T) {
	// Python's test_large_pool uses 200 processes.
	p := newPool(t, pool.Workers(100))
	res, err := pool.Map(testbin.Context(t), p, pid, ints(1000), pool.Chunksize(1))
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, r := range res {
		seen[r] = true
	}
	assert.Greater(t, len(seen), 10)
}

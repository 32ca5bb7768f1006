//go:build linux

package queue_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var lostCount = regexp.MustCompile(`(\d+) items put by`)

// A worker that exits with items it could not write (nobody reads the
// queue) fails: Join returns an *ExitError matching ErrNotFlushed whose
// message counts the lost items, and the count is exact: what the parent
// still finds in the pipe and the lost items add up to what was put.
// (Python's worker would block at exit until the parent reads, and a
// parent that joins first waits forever.)
func TestWorkerExitWithUnwrittenItemsFails(t *testing.T) {
	ctx := testbin.Context(t)
	const flushTimeout = 300 * time.Millisecond
	q, err := queue.New[int](0, queue.WithFlushTimeout(flushTimeout))
	require.NoError(t, err)
	defer q.Close()
	const N = 2000
	p := process.New(flood, floodArg{Q: q, N: N})
	require.NoError(t, p.Start())
	t0 := time.Now()
	err = p.Join(ctx) // before reading anything, the classic mistake
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.NotEqual(t, 0, ee.Code)
	assert.ErrorIs(t, err, queue.ErrNotFlushed, "the sentinel crosses the process boundary")
	assert.Less(t, time.Since(t0), 5*time.Second+testbin.Slack, "the worker's wait at exit is bounded")
	m := lostCount.FindStringSubmatch(err.Error())
	require.NotNil(t, m, "the message counts the lost items: %v", err)
	lost, _ := strconv.Atoi(m[1])
	got := 0
	for {
		if _, err := q.TryGet(); err != nil {
			require.ErrorIs(t, err, queue.ErrEmpty)
			break
		}
		got++
	}
	assert.Equal(t, N, got+lost, "in the pipe %d, reported lost %d", got, lost)
	assert.Equal(t, 0, q.Len())
	t.Log(err)
}

// A worker that flushed everything exits 0 even when its flush had to wait
// for the reader.
func TestWorkerExitAfterFlushSucceeds(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	const N = 1500
	p := process.New(flood, floodArg{Q: q, N: N})
	require.NoError(t, p.Start())
	for i := range N {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, p.Join(ctx))
}

// A main process learns the same from process.Shutdown, and Close of the
// queue does not report the items a second time.
func TestShutdownReportsUnwrittenItems(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0, queue.WithFlushTimeout(200*time.Millisecond))
	require.NoError(t, err)
	const N = 1000
	for i := range N {
		require.NoError(t, q.Put(ctx, i))
	}
	err = process.Shutdown(ctx)
	require.ErrorIs(t, err, queue.ErrNotFlushed)
	m := lostCount.FindStringSubmatch(err.Error())
	require.NotNil(t, m, "the message counts the lost items: %v", err)
	lost, _ := strconv.Atoi(m[1])
	assert.Greater(t, lost, 0)
	assert.Less(t, lost, N)
	t.Log(err)
	assert.Equal(t, N-lost, q.Len(), "the dropped items left the count")

	// The queue buffers again (the pipe is still full): a second Shutdown
	// reports those items, and only those.
	for i := range 100 {
		require.NoError(t, q.Put(ctx, N+i))
	}
	err = process.Shutdown(ctx)
	require.ErrorIs(t, err, queue.ErrNotFlushed)
	assert.Contains(t, err.Error(), "100 items put by")
	assert.False(t, errors.Is(q.Close(), queue.ErrNotFlushed), "reported once")
}

var failWith = process.Register("queue.failwith", func(ctx context.Context, _ struct{}) error {
	return fmt.Errorf("consumer: %w", queue.ErrTaskLost)
})

// A worker's error keeps its queue sentinel across the process boundary.
func TestWorkerErrorKeepsSentinel(t *testing.T) {
	ctx := testbin.Context(t)
	p := process.New(failWith, struct{}{})
	require.NoError(t, p.Start())
	err := p.Join(ctx)
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, queue.ErrTaskLost)
	assert.NotErrorIs(t, err, queue.ErrNotFlushed)
	assert.Equal(t, "consumer: queue: tasks lost with a process that died", ee.Message)
}

//go:build linux

package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPutGetOrder(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	ctx := testbin.Context(t)
	for i := range 100 {
		require.NoError(t, q.Put(ctx, i))
	}
	assert.Equal(t, 100, q.Len())
	assert.False(t, q.Empty())
	assert.False(t, q.Full(), "unbounded is never full")
	for i := range 100 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, v)
	}
	assert.True(t, q.Empty())
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

func TestBoundedFull(t *testing.T) {
	q, err := queue.New[string](3)
	require.NoError(t, err)
	defer q.Close()
	for _, s := range []string{"a", "b", "c"} {
		require.NoError(t, q.TryPut(s))
	}
	assert.True(t, q.Full())
	assert.ErrorIs(t, q.TryPut("d"), queue.ErrFull)
	// Python: put(True, t) raises Full after about t.
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = q.Put(ctx, "d")
	el := time.Since(t0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, el, 90*time.Millisecond)
	assert.Less(t, el, testbin.Slack)
	assert.Equal(t, 3, q.Len(), "a put that timed out added nothing")
	v, err := q.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, "a", v)
	assert.False(t, q.Full())
	require.NoError(t, q.TryPut("d"))
}

func TestBoundedPutWakesOnGet(t *testing.T) {
	q, err := queue.New[int](1)
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, q.Put(testbin.Context(t), 1))
	done := make(chan error, 1)
	go func() { done <- q.Put(testbin.Context(t), 2) }()
	select {
	case <-done:
		t.Fatal("Put did not wait on a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	v, err := q.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Put was not woken by Get")
	}
	v, err = q.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, 2, v)
}

func TestGetDeadline(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	for range 3 {
		t0 := time.Now() // before the deadline is set: a preemption in between must not shorten it
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err = q.Get(ctx)
		el := time.Since(t0)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, el, 90*time.Millisecond)
		assert.Less(t, el, testbin.Slack)
	}
	// Cancellation (no deadline) ends the wait too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	// And the queue is unchanged.
	require.NoError(t, q.Put(testbin.Context(t), 7))
	v, err := q.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, 7, v)
}

func TestClosed(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	require.NoError(t, q.Put(testbin.Context(t), 1))
	require.NoError(t, q.Close())
	require.NoError(t, q.Close(), "a second Close is a no-op")
	assert.ErrorIs(t, q.Put(testbin.Context(t), 1), queue.ErrClosed)
	assert.ErrorIs(t, q.TryPut(1), queue.ErrClosed)
	_, err = q.Get(testbin.Context(t))
	assert.ErrorIs(t, err, queue.ErrClosed)
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrClosed)
	assert.Equal(t, 0, q.Len())
	assert.ErrorIs(t, q.Flush(testbin.Context(t)), queue.ErrClosed)
}

func TestCloseWakesGet(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := q.Get(testbin.Context(t))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, q.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, queue.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake Get")
	}
}

func TestJoinableLocal(t *testing.T) {
	q, err := queue.NewJoinable[int](0)
	require.NoError(t, err)
	defer q.Close()
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
	require.NoError(t, q.Join(testbin.Context(t)), "nothing put: Join returns at once")
	for i := range 3 {
		require.NoError(t, q.Put(testbin.Context(t), i))
	}
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone, "put but not taken is no task to mark done")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	assert.ErrorIs(t, q.Join(ctx), context.DeadlineExceeded)
	cancel()
	_, err = q.Get(testbin.Context(t))
	require.NoError(t, err)
	require.NoError(t, q.TaskDone())
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone, "one taken, one done")
	for range 2 {
		_, err := q.Get(testbin.Context(t))
		require.NoError(t, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	assert.ErrorIs(t, q.Join(ctx), context.DeadlineExceeded, "taken is not done")
	cancel()
	for range 2 {
		require.NoError(t, q.TaskDone())
	}
	require.NoError(t, q.Join(testbin.Context(t)))
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
}

func TestSimpleLocal(t *testing.T) {
	q, err := queue.NewSimple[string]()
	require.NoError(t, err)
	assert.True(t, q.Empty())
	require.NoError(t, q.Put(testbin.Context(t), "x"))
	assert.False(t, q.Empty())
	v, err := q.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, "x", v)
	assert.True(t, q.Empty())
	require.NoError(t, q.Close())
	require.NoError(t, q.Close())
	assert.ErrorIs(t, q.Put(testbin.Context(t), "y"), queue.ErrClosed)
	_, err = q.Get(testbin.Context(t))
	assert.ErrorIs(t, err, queue.ErrClosed)
}

func TestLargeLocal(t *testing.T) {
	q, err := queue.New[[]byte](0)
	require.NoError(t, err)
	defer q.Close()
	sizes := []int{4000, 4095, 4096, 5000, 100 << 10, 3 << 20}
	go func() {
		for i, n := range sizes {
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(i + j*7)
			}
			if err := q.Put(context.Background(), b); err != nil {
				t.Error(err)
			}
		}
	}()
	for i, n := range sizes {
		v, err := q.Get(testbin.Context(t))
		require.NoError(t, err)
		require.Len(t, v, n)
		for j := range v {
			if v[j] != byte(i+j*7) {
				t.Fatalf("item %d byte %d differs", i, j)
			}
		}
	}
	require.NoError(t, q.Flush(testbin.Context(t)))
}

// Flush waits for buffered items to reach the pipe; with nobody reading it
// ends with its ctx, and the items stay buffered (counted, and flushed once
// a reader comes).
func TestFlush(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	ctx := testbin.Context(t)
	require.NoError(t, q.Flush(ctx), "nothing buffered")
	const n = 1000 // more than the pipe holds
	for i := range n {
		require.NoError(t, q.Put(ctx, i))
	}
	fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = q.Flush(fctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, n, q.Len())
	done := make(chan error, 1)
	go func() { done <- q.Flush(ctx) }()
	for i := range n {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, <-done)
}

func TestPassClosed(t *testing.T) {
	q, err := queue.New[string](0)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	p := process.New(topLevel, q)
	err = p.Start()
	assert.ErrorIs(t, err, queue.ErrClosed)
}

// fillUntilFull makes a queue and puts 0, 1, ... with TryPut until the
// pipe and the producer's backlog are full; it returns how many it took.
func fillUntilFull(t *testing.T) (*queue.Queue[int], int) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	n := 0
	for ; n < 10000; n++ {
		if err = q.TryPut(n); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, queue.ErrFull)
	return q, n
}

// A producer holds at most MaxUnwritten items it could not write: TryPut
// says ErrFull beyond that while readers may come, and Put waits. When no
// process reads for PutStall, Put buffers instead of waiting (Python's put
// never blocks; a process that reads its own queue later is not
// deadlocked), until a reader takes an item.
func TestProducerBacklogIsBounded(t *testing.T) {
	ctx := testbin.Context(t)
	q, n := fillUntilFull(t)
	assert.Greater(t, n, queue.MaxUnwritten, "the pipe holds items too")
	t.Logf("%d items accepted", n)

	t0 := time.Now()
	require.NoError(t, q.Put(ctx, n), "no process reads: Put buffers after the stall")
	d := time.Since(t0)
	assert.GreaterOrEqual(t, d, queue.PutStall)
	assert.Less(t, d, queue.PutStall+testbin.Slack)
	n++
	require.NoError(t, q.TryPut(n), "still nobody reads: no wait")
	n++

	v, err := q.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, v)
	assert.ErrorIs(t, q.TryPut(n), queue.ErrFull, "a reader came: the bound is back")

	// A Put that waits for room ends with its ctx, and nothing is added.
	pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	go func() {
		for range 3 { // keep "readers alive" while the Put waits
			time.Sleep(20 * time.Millisecond)
			q.TryGet()
		}
	}()
	before := q.Len()
	assert.ErrorIs(t, q.Put(pctx, -1), context.DeadlineExceeded)
	time.Sleep(100 * time.Millisecond)
	assert.LessOrEqual(t, q.Len(), before)
	for q.Len() > 0 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.NotEqual(t, -1, v)
	}
}

// Items a Put buffered because the pipe was full reach readers, in order,
// when the process puts nothing more: a Put writes the backlog left by
// earlier ones, and when no Put comes a flusher takes it over.
func TestBufferedItemsAreWrittenWithoutAnotherPut(t *testing.T) {
	ctx := testbin.Context(t)
	q, n := fillUntilFull(t)
	for i := range n {
		gctx, cancel := context.WithTimeout(ctx, testbin.Slack)
		v, err := q.Get(gctx)
		cancel()
		require.NoError(t, err, "item %d of %d", i, n)
		require.Equal(t, i, v)
	}
	assert.Equal(t, 0, q.Len())
}

// The backlog bound counts a large item like any other: behind a backlog
// at its bound it waits too.
func TestLargeItemBehindFullBacklogWaits(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[[]byte](0)
	require.NoError(t, err)
	defer q.Close()
	small, large := []byte{1}, make([]byte, 3*4096)
	n := 0
	for ; n < 10000; n++ {
		if err = q.TryPut(small); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, queue.ErrFull)
	assert.ErrorIs(t, q.TryPut(large), queue.ErrFull)
	for range n {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, small, v)
	}
	require.NoError(t, q.TryPut(large), "the backlog is written: room again")
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Len(t, v, len(large))
}

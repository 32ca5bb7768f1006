//go:build linux

package queue_test

// The behaviour CPython's own queue tests check (Lib/test/_test_multiprocessing.py,
// class _TestQueue), each stated where it is tested, across real processes
// where CPython checks it across processes.

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Get with a timeout on an empty queue fails after at least the timeout; a
// non-blocking get fails at once (CPython: test_get, get(True, t) raises
// queue.Empty after t, get(False) at once).
func TestGetOnEmptyWaitsForItsTimeout(t *testing.T) {
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	for _, d := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err := q.Get(ctx)
		el := time.Since(t0)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, el, d-10*time.Millisecond)
		assert.Less(t, el, d+testbin.Slack)
	}
	t0 := time.Now()
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
	assert.Less(t, time.Since(t0), testbin.Slack)
}

// Put on a full queue: a non-blocking put fails at once with ErrFull, a
// timed put after its timeout, and nothing is added (CPython: test_put,
// put(False) raises queue.Full at once, put(True, t) after t).
func TestPutOnFullFailsAfterItsTimeout(t *testing.T) {
	q, err := queue.New[int](2)
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, q.Put(testbin.Context(t), 1))
	require.NoError(t, q.Put(testbin.Context(t), 2))
	t0 := time.Now()
	assert.ErrorIs(t, q.TryPut(3), queue.ErrFull)
	assert.Less(t, time.Since(t0), testbin.Slack)
	t0 = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, q.Put(ctx, 3), context.DeadlineExceeded)
	el := time.Since(t0)
	assert.GreaterOrEqual(t, el, 190*time.Millisecond)
	assert.Less(t, el, 200*time.Millisecond+testbin.Slack)
	assert.Equal(t, 2, q.Len())
}

var countUp = process.Register("queue.countup", func(ctx context.Context, a floodArg) error {
	for i := range a.N {
		if err := a.Q.Put(ctx, i); err != nil {
			return err
		}
	}
	return a.Q.Close()
})

// Items of a single producer arrive in order, and everything a child put
// arrives although the child closed the queue and exited (CPython:
// test_fork, a child puts, the parent gets after the child is gone).
func TestChildProducerItemsArriveInOrder(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	p := process.New(countUp, floodArg{Q: q, N: 5000})
	require.NoError(t, p.Start())
	for i := range 5000 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, p.Join(ctx))
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

type taskArg struct {
	Q    *queue.Joinable[int]
	Done *queue.Simple[int]
}

// taskWorker is a daemon consumer: it takes tasks forever, reports each
// done (before TaskDone) and marks it done.
var taskWorker = process.Register("queue.taskworker", func(ctx context.Context, a taskArg) error {
	for {
		v, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
		if err := a.Done.Put(ctx, v); err != nil {
			return err
		}
		if err := a.Q.TaskDone(); err != nil {
			return err
		}
	}
})

// TaskDone called more times than items were taken fails; Join returns only
// after every item is done, here 10 items and 4 workers (CPython:
// test_task_done, task_done() raises ValueError when called too many times,
// join() returns once every worker marked its items done).
func TestTaskDoneAndJoin(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.NewJoinable[int](0)
	require.NoError(t, err)
	defer q.Close()
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
	done, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer done.Close()
	var ws []*process.Process
	for range 4 {
		p := process.New(taskWorker, taskArg{Q: q, Done: done}, process.WithDaemon())
		require.NoError(t, p.Start())
		ws = append(ws, p)
	}
	for i := range 10 {
		require.NoError(t, q.Put(ctx, i))
	}
	require.NoError(t, q.Join(ctx))
	// Every task reported itself before TaskDone, so all ten reports are
	// in the pipe by now.
	var got []int
	for !done.Empty() {
		v, err := done.Get(ctx)
		require.NoError(t, err)
		got = append(got, v)
	}
	sort.Ints(got)
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
	assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
	for _, p := range ws {
		require.NoError(t, p.Terminate())
		<-p.Done()
	}
}

// Put and Get on a closed queue fail with ErrClosed; closing twice is fine
// (CPython: test_closed_queue, put on a closed queue raises ValueError).
func TestClosedQueueRefusesPutAndGet(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	j, err := queue.NewJoinable[int](1)
	require.NoError(t, err)
	s, err := queue.NewSimple[int]()
	require.NoError(t, err)
	require.NoError(t, j.Put(ctx, 1))
	for _, c := range []interface{ Close() error }{q, j, s} {
		require.NoError(t, c.Close())
		require.NoError(t, c.Close())
	}
	assert.ErrorIs(t, q.Put(ctx, 1), queue.ErrClosed)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	assert.ErrorIs(t, j.Put(ctx, 1), queue.ErrClosed)
	_, err = j.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	assert.ErrorIs(t, j.TaskDone(), queue.ErrClosed)
	assert.ErrorIs(t, j.Join(ctx), queue.ErrClosed)
	assert.ErrorIs(t, s.Put(ctx, 1), queue.ErrClosed)
	_, err = s.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	assert.True(t, s.Empty())
}

// An item that cannot be encoded does not wedge the queue: Put reports it,
// the next Put arrives and the size stays right (CPython:
// test_queue_feeder_donot_stop_onexc, where the feeder thread only prints
// the pickling error and goes on).
func TestUnencodableItemDoesNotWedge(t *testing.T) {
	ctx := testbin.Context(t)
	for _, maxsize := range []int{0, 1} {
		q, err := queue.New[any](maxsize)
		require.NoError(t, err)
		err = q.Put(ctx, func() {})
		require.Error(t, err)
		assert.Equal(t, 0, q.Len())
		require.NoError(t, q.Put(ctx, "next"), "maxsize %d: the failed Put took no room", maxsize)
		assert.Equal(t, 1, q.Len())
		v, err := q.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, "next", v)
		assert.Equal(t, 0, q.Len())
		require.NoError(t, q.Close())
	}
	s, err := queue.NewSimple[any]()
	require.NoError(t, err)
	defer s.Close()
	require.Error(t, s.Put(ctx, make(chan int)))
	assert.True(t, s.Empty())
	require.NoError(t, s.Put(ctx, 1))
	v, err := s.Get(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
}

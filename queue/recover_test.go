//go:build linux

package queue_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type holdArg struct {
	Q     *queue.Joinable[int]
	Ready *queue.Simple[int]
}

// holder takes one task, says so, and never marks it done.
var holder = process.Register("queue.holder", func(ctx context.Context, a holdArg) error {
	v, err := a.Q.Get(ctx)
	if err != nil {
		return err
	}
	if err := a.Ready.Put(ctx, v); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// A consumer killed holding a task does not hang Join (Python's would wait
// forever): Join returns once the death is noticed, with ErrTaskLost.
func TestJoinSurvivesDeadConsumer(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.NewJoinable[int](0)
	require.NoError(t, err)
	defer q.Close()
	ready, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer ready.Close()
	require.NoError(t, q.Put(ctx, 1))
	require.NoError(t, q.Put(ctx, 2))
	p := process.New(holder, holdArg{Q: q, Ready: ready})
	require.NoError(t, p.Start())
	v, err := ready.Get(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Kill())
	<-p.Done()
	// The other task is taken and done here.
	w, err := q.Get(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []int{1, 2}, []int{v, w})
	require.NoError(t, q.TaskDone())
	t0 := time.Now()
	err = q.Join(ctx)
	assert.ErrorIs(t, err, queue.ErrTaskLost)
	assert.Less(t, time.Since(t0), 2*time.Second)
	require.NoError(t, q.Join(ctx), "the loss is reported once")
}

type floodSignalArg struct {
	Q     *queue.Queue[int]
	N     int
	Ready *queue.Simple[int]
}

// floodAndWait puts N items (more than the pipe holds: the rest stay
// buffered, counted in Len), says so, and waits to be killed.
var floodAndWait = process.Register("queue.floodwait", func(ctx context.Context, a floodSignalArg) error {
	for i := range a.N {
		if err := a.Q.Put(ctx, i); err != nil {
			return err
		}
	}
	if err := a.Ready.Put(ctx, 1); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// A bounded queue does not shrink when a producer dies with items counted
// but never written: once a Put waits for room, the dead process's counts
// are recovered. (Python's semaphore would keep them forever.)
func TestBoundedSurvivesDeadProducer(t *testing.T) {
	ctx := testbin.Context(t)
	const max = 600 // more than a pipe holds
	q, err := queue.New[int](max)
	require.NoError(t, err)
	defer q.Close()
	ready, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer ready.Close()
	p := process.New(floodAndWait, floodSignalArg{Q: q, N: max, Ready: ready})
	require.NoError(t, p.Start())
	_, err = ready.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, max, q.Len())
	require.NoError(t, p.Kill())
	<-p.Done()
	inPipe := 0
	for {
		if _, err := q.TryGet(); err != nil {
			require.ErrorIs(t, err, queue.ErrEmpty)
			break
		}
		inPipe++
	}
	require.Less(t, inPipe, max, "some items were still buffered by the producer")
	t.Logf("%d items were in the pipe, %d died buffered", inPipe, max-inPipe)
	// The full capacity is there again.
	for i := range max {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := q.Put(pctx, i)
		cancel()
		require.NoError(t, err, "put %d", i)
	}
	assert.Equal(t, max, q.Len())
	assert.ErrorIs(t, q.TryPut(0), queue.ErrFull)
	for range max {
		_, err := q.Get(ctx)
		require.NoError(t, err)
	}
	assert.Equal(t, 0, q.Len())
}

type bigArg struct {
	Q    *queue.Queue[[]byte]
	Size int
}

var bigPut = process.Register("queue.bigput", func(ctx context.Context, a bigArg) error {
	return a.Q.Put(ctx, pattern(7, a.Size))
})

// A 64 MiB item passes intact from a child.
func TestHugeItem(t *testing.T) {
	ctx := testbin.Context(t)
	const size = 64 << 20
	q, err := queue.New[[]byte](0)
	require.NoError(t, err)
	defer q.Close()
	p := process.New(bigPut, bigArg{Q: q, Size: size})
	require.NoError(t, p.Start())
	v, err := q.Get(ctx)
	require.NoError(t, err)
	require.Len(t, v, size)
	assert.Equal(t, sha256.Sum256(pattern(7, size)), sha256.Sum256(v))
	require.NoError(t, p.Join(ctx))
}

type mixedArg struct {
	Q any // arrives as *queue.Queue[any], which puts anything
}

// putMixed puts a string and then an int.
var putMixed = process.Register("queue.putmixed", func(ctx context.Context, a mixedArg) error {
	q := a.Q.(*queue.Queue[any])
	if err := q.Put(ctx, "not an int"); err != nil {
		return err
	}
	return q.Put(ctx, 5)
})

// An item that does not decode into T is an error at Get, and the queue
// stays usable: the next item arrives, and the counts are right.
func TestDecodeErrorAcrossProcesses(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	p := process.New(putMixed, mixedArg{Q: q})
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctx))
	assert.Equal(t, 2, q.Len())
	_, err = q.Get(ctx)
	require.Error(t, err)
	t.Log(err)
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, v)
	assert.Equal(t, 0, q.Len())
}

// Close in a main process that cannot flush (nobody reads) returns
// ErrNotFlushed with the count; the worker's case is in exit_test.go.
func TestCloseReportsUnwrittenItems(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0, queue.WithFlushTimeout(200*time.Millisecond))
	require.NoError(t, err)
	for i := range 1000 {
		require.NoError(t, q.Put(ctx, i))
	}
	err = q.Close()
	assert.ErrorIs(t, err, queue.ErrNotFlushed)
	assert.Regexp(t, lostCount, err.Error())
	t.Log(err)
}

// Len and Empty forget the items a producer died with before it wrote them:
// after the survivors took what reached the pipe, the queue is empty, so
// that `for !q.Empty() { q.Get(ctx) }` ends.
func TestLenForgetsDeadProducersItems(t *testing.T) {
	for _, maxsize := range []int{0, 1000} {
		t.Run(strconv.Itoa(maxsize), func(t *testing.T) {
			ctx := testbin.Context(t)
			q, err := queue.New[int](maxsize)
			require.NoError(t, err)
			defer q.Close()
			ready, err := queue.NewSimple[int]()
			require.NoError(t, err)
			defer ready.Close()
			const N = 1000
			p := process.New(floodAndWait, floodSignalArg{Q: q, N: N, Ready: ready})
			require.NoError(t, p.Start())
			_, err = ready.Get(ctx)
			require.NoError(t, err)
			assert.Equal(t, N, q.Len())
			require.NoError(t, p.Kill())
			<-p.Done()
			got := 0
			for !q.Empty() {
				gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := q.Get(gctx)
				cancel()
				require.NoError(t, err, "Empty is false with %d items counted, %d taken", q.Len(), got)
				got++
			}
			assert.Less(t, got, N, "some items died buffered")
			assert.Equal(t, 0, q.Len())
			t.Logf("%d items were in the pipe, %d died buffered", got, N-got)
		})
	}
}

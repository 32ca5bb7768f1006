//go:build linux

package pool_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newPool starts a pool that the test closes and joins (or that is
// already terminated) at its end.
func newPool(t testing.TB, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p, err := pool.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Close()
		assert.NoError(t, p.Join(testbin.Context(t)))
	})
	return p
}

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestMapInOrder(t *testing.T) {
	p := newPool(t, pool.Workers(3))
	for _, n := range []int{1, 2, 7, 100, 5000} {
		for _, chunk := range []int{0, 1, 3, 1000} {
			var opts []pool.MapOption
			if chunk > 0 {
				opts = append(opts, pool.Chunksize(chunk))
			}
			res, err := pool.Map(testbin.Context(t), p, square, ints(n), opts...)
			require.NoError(t, err, "n=%d chunk=%d", n, chunk)
			require.Len(t, res, n)
			for i, r := range res {
				require.Equal(t, i*i, r, "n=%d chunk=%d", n, chunk)
			}
		}
	}
	res, err := pool.Map(testbin.Context(t), p, square, nil)
	require.NoError(t, err)
	assert.Empty(t, res)
}

type pair struct {
	A, B int
	Tag  string
}

type sum struct {
	Sum int
	Tag string
}

// add is Python's starmap: the arguments travel as one struct.
var add = pool.Register("test.add", func(ctx context.Context, p pair) (sum, error) {
	return sum{Sum: p.A + p.B, Tag: p.Tag + "!"}, nil
})

var strlen = pool.Register("test.strlen", func(ctx context.Context, s string) ([]byte, error) {
	return []byte(fmt.Sprint(len(s))), nil
})

func TestMapStructAndScalarTypes(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	args := []pair{{1, 2, "a"}, {3, 4, "b"}, {-5, 5, ""}}
	res, err := pool.Map(testbin.Context(t), p, add, args)
	require.NoError(t, err)
	assert.Equal(t, []sum{{3, "a!"}, {7, "b!"}, {0, "!"}}, res)

	words := []string{"", "a", string(make([]byte, 300)), string(make([]byte, 70000))}
	out, err := pool.Map(testbin.Context(t), p, strlen, words)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("0"), []byte("1"), []byte("300"), []byte("70000")}, out)
}

func TestImapOrderedAndUnordered(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	var got []int
	for r, err := range pool.Imap(testbin.Context(t), p, square, ints(500), pool.Chunksize(7)) {
		require.NoError(t, err)
		got = append(got, r)
	}
	require.Len(t, got, 500)
	for i, r := range got {
		require.Equal(t, i*i, r)
	}

	// Small chunks, and chunks larger than the batch ImapUnordered takes
	// under one lock (runs of results consumed in parts).
	for _, c := range []struct{ n, chunk int }{{500, 3}, {20000, 5000}} {
		got = got[:0]
		for r, err := range pool.ImapUnordered(testbin.Context(t), p, square, ints(c.n), pool.Chunksize(c.chunk)) {
			require.NoError(t, err)
			got = append(got, r)
		}
		require.Len(t, got, c.n)
		slices.Sort(got)
		for i, r := range got {
			require.Equal(t, i*i, r)
		}
	}
}

// TestImapYieldsEarly shows that Imap yields a result while later tasks
// are still running.
func TestImapYieldsEarly(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	args := []time.Duration{0, 3 * time.Second}
	start := time.Now()
	for d, err := range pool.Imap(testbin.Context(t), p, sleepy, args, pool.Chunksize(1)) {
		require.NoError(t, err)
		assert.Equal(t, time.Duration(0), d)
		assert.Less(t, time.Since(start), time.Second, "the first result waited for the second")
		break // cancels the 3 s task
	}
	// Close+Join returns quickly only if the break cancelled the running task.
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.NoError(t, p.Join(ctx))
}

func TestImapPerItemErrors(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	n := 0
	for r, err := range pool.Imap(testbin.Context(t), p, failAt, ints(30), pool.Chunksize(4)) {
		if n%7 == 3 {
			var te *pool.TaskError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, n, te.Index)
			assert.Equal(t, fmt.Sprintf("bad %d", n), te.Message)
		} else {
			require.NoError(t, err)
			assert.Equal(t, n, r)
		}
		n++
	}
	assert.Equal(t, 30, n)
}

func TestMapLowestIndexError(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	_, err := pool.Map(testbin.Context(t), p, failAt, ints(200), pool.Chunksize(5))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 3, te.Index)
	assert.Equal(t, "bad 3", te.Message)
	assert.Empty(t, te.Stack)
	// The pool is still good.
	res, err := pool.Map(testbin.Context(t), p, square, ints(10))
	require.NoError(t, err)
	assert.Equal(t, 81, res[9])
}

func TestPanicIsTaskErrorWorkerLives(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	before, err := pool.Apply(testbin.Context(t), p, pid, 0)
	require.NoError(t, err)
	_, err = pool.Map(testbin.Context(t), p, panicky, ints(5))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 2, te.Index)
	assert.Equal(t, "panic: boom", te.Message)
	assert.Contains(t, te.Stack, "panic")
	after, err := pool.Apply(testbin.Context(t), p, pid, 0)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the worker was replaced after a panic")
}

func TestApplyAndAsyncResult(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	r, err := pool.Apply(testbin.Context(t), p, square, 12)
	require.NoError(t, err)
	assert.Equal(t, 144, r)

	ar := pool.ApplyAsync(p, sleepy, 300*time.Millisecond)
	assert.False(t, ar.Ready())
	assert.False(t, ar.Successful())
	// Python's get(timeout): times out after about the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	start := time.Now()
	_, err = ar.Get(ctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), 45*time.Millisecond)
	assert.Less(t, time.Since(start), testbin.Slack)

	require.NoError(t, ar.Wait(testbin.Context(t)))
	select {
	case <-ar.Done():
	default:
		t.Fatal("Done not closed after Wait")
	}
	assert.True(t, ar.Ready())
	assert.True(t, ar.Successful())
	d, err := ar.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, 300*time.Millisecond, d)

	bad := pool.ApplyAsync(p, failAt, 3)
	require.NoError(t, bad.Wait(testbin.Context(t)))
	assert.True(t, bad.Ready())
	assert.False(t, bad.Successful())
	_, err = bad.Get(testbin.Context(t))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 0, te.Index)
	// One task: its error names no index ("task 0" would only puzzle).
	assert.Equal(t, "pool: task: bad 3", err.Error())
	_, err = pool.Apply(testbin.Context(t), p, exitWith, 3)
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	assert.Contains(t, err.Error(), "pool: task: worker (pid ")
}

func TestMapAsync(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	ar := pool.MapAsync(p, square, ints(100))
	res, err := ar.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Equal(t, 99*99, res[99])
	ar2 := pool.MapAsync(p, failAt, ints(20))
	_, err = ar2.Get(testbin.Context(t))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 3, te.Index)
	empty, err := pool.MapAsync(p, square, nil).Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestCallbacksAndProgress(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	var mu sync.Mutex
	got := map[int]int{}
	var failed []int
	var last, calls atomic.Int64
	_, err := pool.Map(testbin.Context(t), p, square, ints(1000),
		pool.OnResult(func(i, r int) { mu.Lock(); got[i] = r; mu.Unlock() }),
		pool.Progress(func(done, total int) {
			assert.Equal(t, 1000, total)
			assert.GreaterOrEqual(t, int64(done), last.Load(), "progress went backwards")
			last.Store(int64(done))
			calls.Add(1)
		}))
	require.NoError(t, err)
	// Every callback has run by the time Map returns.
	assert.Len(t, got, 1000)
	assert.Equal(t, 49, got[7])
	assert.Equal(t, int64(1000), last.Load())
	assert.Positive(t, calls.Load())

	// Apply: Python's callback and error_callback.
	okc := make(chan int, 1)
	_, err = pool.Apply(testbin.Context(t), p, square, 5, pool.OnResult(func(i, r int) { okc <- r }))
	require.NoError(t, err)
	assert.Equal(t, 25, <-okc)
	errc := make(chan error, 1)
	ar := pool.ApplyAsync(p, failAt, 10, pool.OnError(func(i int, err error) {
		mu.Lock()
		failed = append(failed, i)
		mu.Unlock()
		errc <- err
	}))
	_, err = ar.Get(testbin.Context(t))
	require.Error(t, err)
	assert.Equal(t, err, <-errc)
	assert.Equal(t, []int{0}, failed)

	// A callback of the wrong type is an error before anything runs.
	_, err = pool.Map(testbin.Context(t), p, square, ints(3), pool.OnResult(func(i int, s string) {}))
	require.ErrorIs(t, err, pool.ErrInvalidOption)
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []pool.Option{
		pool.Workers(0), pool.Workers(-1), pool.MaxTasksPerChild(0), pool.MaxTasksPerChild(-1),
		pool.TaskTimeout(0), pool.MemoryLimit(0), pool.CPUTime(-time.Second),
	} {
		p, err := pool.New(o)
		require.ErrorIs(t, err, pool.ErrInvalidOption)
		assert.Nil(t, p)
	}
	p := newPool(t, pool.Workers(1))
	_, err := pool.Map(testbin.Context(t), p, square, ints(3), pool.Chunksize(0))
	require.ErrorIs(t, err, pool.ErrInvalidOption)
}

func TestClosedPool(t *testing.T) {
	p, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	require.ErrorIs(t, p.Join(testbin.Context(t)), pool.ErrNotClosed)
	// Queued work still runs after Close.
	var ars []*pool.AsyncResult[time.Duration]
	for range 10 {
		ars = append(ars, pool.ApplyAsync(p, sleepy, 20*time.Millisecond))
	}
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	_, err = pool.Map(testbin.Context(t), p, square, ints(3))
	require.ErrorIs(t, err, pool.ErrClosed)
	_, err = pool.Map(testbin.Context(t), p, square, nil)
	require.ErrorIs(t, err, pool.ErrClosed)
	_, err = pool.ApplyAsync(p, square, 1).Get(testbin.Context(t))
	require.ErrorIs(t, err, pool.ErrClosed)
	require.NoError(t, p.Join(testbin.Context(t)))
	for _, ar := range ars {
		require.True(t, ar.Ready())
		d, err := ar.Get(testbin.Context(t))
		require.NoError(t, err)
		assert.Equal(t, 20*time.Millisecond, d)
	}
	require.NoError(t, p.Terminate())
	require.NoError(t, p.Join(testbin.Context(t)))
}

func TestMaxTasksPerChild(t *testing.T) {
	p := newPool(t, pool.Workers(2), pool.MaxTasksPerChild(3))
	// Chunks larger than the budget are split.
	for _, chunk := range []int{1, 10} {
		res, err := pool.Map(testbin.Context(t), p, pid, ints(30), pool.Chunksize(chunk))
		require.NoError(t, err)
		count := map[int]int{}
		for _, r := range res {
			count[r]++
		}
		assert.GreaterOrEqual(t, len(count), 10, "chunk %d: pids %v", chunk, count)
		for pid, n := range count {
			assert.LessOrEqual(t, n, 3, "pid %d ran %d tasks", pid, n)
		}
	}
}

func TestUnencodableArgument(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	echo := anyEcho
	args := []any{1, "two", make(chan int), 4.5}
	res, err := pool.Map(testbin.Context(t), p, echo, args, pool.Chunksize(4))
	require.Error(t, err)
	assert.Nil(t, res)
	assert.Contains(t, err.Error(), "task 2: cannot encode the argument")
	// Imap shows the other items went through.
	var got []any
	var errs []error
	for r, err := range pool.Imap(testbin.Context(t), p, echo, args, pool.Chunksize(4)) {
		got = append(got, r)
		errs = append(errs, err)
	}
	require.Len(t, got, 4)
	assert.NoError(t, errs[0])
	assert.NoError(t, errs[1])
	assert.Error(t, errs[2])
	assert.NoError(t, errs[3])
	assert.EqualValues(t, 1, got[0])
	assert.Equal(t, "two", got[1])
	assert.Equal(t, 4.5, got[3])
	// And the pool is reused.
	r, err := pool.Apply(testbin.Context(t), p, square, 3)
	require.NoError(t, err)
	assert.Equal(t, 9, r)
}

var anyEcho = pool.Register("test.anyEcho", func(ctx context.Context, v any) (any, error) { return v, nil })

func TestCancelledContextReturnsPromptly(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	args := make([]time.Duration, 20)
	for i := range args {
		args[i] = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(testbin.Context(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := pool.Map(ctx, p, sleepy, args, pool.Chunksize(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	// The running tasks saw their ctx cancelled: the workers are free.
	r, err := pool.Apply(testbin.Context(t), p, sleepy, time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, time.Millisecond, r)
	p.Close()
	jctx, jcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer jcancel()
	require.NoError(t, p.Join(jctx))

	// Apply and Imap too.
	p2 := newPool(t, pool.Workers(1))
	ctx2, cancel2 := context.WithTimeout(testbin.Context(t), 100*time.Millisecond)
	defer cancel2()
	_, err = pool.Apply(ctx2, p2, sleepy, 10*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	ctx3, cancel3 := context.WithTimeout(testbin.Context(t), 100*time.Millisecond)
	defer cancel3()
	var last error
	for _, err := range pool.Imap(ctx3, p2, sleepy, args) {
		last = err
	}
	require.ErrorIs(t, last, context.DeadlineExceeded)
	var te *pool.TaskError
	assert.False(t, errors.As(last, &te))
}

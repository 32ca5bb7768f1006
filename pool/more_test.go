package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type logArg struct {
	Path   string
	I      int
	FailAt int
	Sleep  time.Duration
}

// logged appends its index to a file, so the test sees which tasks ran.
var logged = pool.Register("test.logged", func(ctx context.Context, a logArg) (int, error) {
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(f, a.I)
	f.Close()
	if a.I == a.FailAt {
		return 0, errors.New("failed on purpose")
	}
	select {
	case <-time.After(a.Sleep):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return a.I, nil
})

func ranTasks(t *testing.T, path string) []int {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []int
	for _, l := range strings.Fields(string(b)) {
		i, err := strconv.Atoi(l)
		require.NoError(t, err)
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Map's error is the lowest failing index whatever the timing (the items
// before it still run), and nothing after it starts once it is known.
func TestMapRunsNothingAfterAFailure(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	for _, failAt := range []int{0, 5} {
		path := t.TempDir() + "/ran"
		args := make([]logArg, 40)
		for i := range args {
			args[i] = logArg{Path: path, I: i, FailAt: failAt, Sleep: 30 * time.Millisecond}
		}
		start := time.Now()
		_, err := pool.Map(testbin.Context(t), p, logged, args, pool.Chunksize(1))
		var te *pool.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, failAt, te.Index)
		assert.Less(t, time.Since(start), time.Second)
		ran := ranTasks(t, path)
		for i := 0; i <= failAt; i++ {
			assert.Contains(t, ran, i, "item %d before the failure did not run", i)
		}
		// Each worker holds one long task at a time: at most the one
		// running beside the failure ran after it.
		assert.LessOrEqual(t, len(ran), failAt+2, "ran %v", ran)
	}
}

// A worker that fails an item of a Map starts none of the later items it
// holds, without waiting for the parent's stop: here one worker holds the
// whole job in one chunk, so nothing but the worker itself can stop it in
// time.
func TestMapFailingWorkerStopsItsOwnItems(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	path := t.TempDir() + "/ran"
	args := make([]logArg, 10)
	for i := range args {
		args[i] = logArg{Path: path, I: i, FailAt: 2, Sleep: 5 * time.Millisecond}
	}
	_, err := pool.Map(testbin.Context(t), p, logged, args, pool.Chunksize(len(args)))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 2, te.Index)
	assert.Equal(t, []int{0, 1, 2}, ranTasks(t, path))
	// Imap is not stopped by an error: every item runs.
	path = t.TempDir() + "/ran"
	for i := range args {
		args[i].Path = path
	}
	nerr := 0
	for _, err := range pool.Imap(testbin.Context(t), p, logged, args, pool.Chunksize(len(args))) {
		if err != nil {
			nerr++
		}
	}
	assert.Equal(t, 1, nerr)
	assert.Len(t, ranTasks(t, path), len(args))
}

var ctxErr = pool.Register("test.ctxErr", func(ctx context.Context, _ int) (int, error) {
	return 0, fmt.Errorf("gave up: %w", context.DeadlineExceeded)
})

func TestTaskErrorUnwrapsContextErrors(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	_, err := pool.Apply(testbin.Context(t), p, ctxErr, 0)
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.Equal(t, "gave up: context deadline exceeded", te.Message)
}

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

// Many goroutines share one pool (run with -race).
func TestConcurrentCallers(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := testbin.Context(t)
			for round := range 5 {
				res, err := pool.Map(ctx, p, square, ints(50+g+round), pool.Chunksize(1+g))
				if assert.NoError(t, err) {
					assert.Equal(t, (49+g+round)*(49+g+round), res[len(res)-1])
				}
				ar := pool.ApplyAsync(p, square, g)
				r, err := ar.Get(ctx)
				assert.NoError(t, err)
				assert.Equal(t, g*g, r)
				n := 0
				for r, err := range pool.ImapUnordered(ctx, p, square, ints(20)) {
					assert.NoError(t, err)
					assert.GreaterOrEqual(t, r, 0)
					n++
					if g%2 == 0 && n == 5 {
						break
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestPythonPoolConformance ports item 20 of the CPython test checks
// (notes/python-multiprocessing.md section 4): _TestPool and
// _TestPoolWorkerLifetime.
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
	t.Run("a SIGKILLed worker fails only its task and the pool goes on (item 23)", func(t *testing.T) {
		_, err := pool.Apply(ctx, p, killSelf, 5)
		var wd *pool.WorkerDiedError
		require.ErrorAs(t, err, &wd)
		assert.Contains(t, err.Error(), "signal 9")
		r, err := pool.Apply(ctx, p, square, 4)
		require.NoError(t, err)
		assert.Equal(t, 16, r)
	})
}

var (
	blob = pool.Register("test.blob", func(ctx context.Context, n int) ([]byte, error) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b, nil
	})
	blobLen = pool.Register("test.blobLen", func(ctx context.Context, b []byte) (int, error) {
		for i, c := range b {
			if c != byte(i%251) {
				return 0, fmt.Errorf("byte %d is %d", i, c)
			}
		}
		return len(b), nil
	})
)

// Values larger than the read buffer, the shared segment (1 MiB) and a
// chunk's usual size travel both ways.
func TestLargeValues(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	sizes := []int{0, 1, 100 << 10, 900 << 10, 3 << 20, 5, 70 << 10, 2 << 20}
	res, err := pool.Map(testbin.Context(t), p, blob, sizes, pool.Chunksize(3))
	require.NoError(t, err)
	for i, b := range res {
		require.Len(t, b, sizes[i])
		for j := 0; j < len(b); j += 4099 {
			require.Equal(t, byte(j%251), b[j])
		}
	}
	lens, err := pool.Map(testbin.Context(t), p, blobLen, res, pool.Chunksize(4))
	require.NoError(t, err)
	assert.Equal(t, sizes, lens)
}

// The arguments are the caller's again when Map or Imap returns, even
// when it returns early: no writer still reads them (run with -race).
func TestArgsReleasedOnReturn(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	args := ints(20000)
	for round := range 20 {
		ctx, cancel := context.WithCancel(testbin.Context(t))
		if round%2 == 0 {
			cancel()
			pool.Map(testbin.Context(t), p, failAt, args, pool.Chunksize(10+round)) // fails at 3
		} else {
			go cancel()
			pool.Map(ctx, p, square, args, pool.Chunksize(10+round))
		}
		for r := range pool.Imap(testbin.Context(t), p, square, args, pool.Chunksize(100)) {
			if r > 100 {
				break
			}
		}
		cancel()
		for i := range args {
			args[i] = i // the race detector objects if the pool still reads
		}
	}
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

//go:build linux

package pool_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relay is a backend for pool.Open that forwards every chunk to a second,
// local pool through that pool's Runner: what a cluster host does with the
// chunks that arrive from the network, without the network. It can deliver
// every result twice, as a backend that retried an item elsewhere would,
// and counts the duplicates the pool refused.
type relay struct {
	to     driver.Runner
	twice  bool
	chunks atomic.Int64
	dups   atomic.Int64
	items  atomic.Int64
}

func (r *relay) Workers() int     { return r.to.Workers() }
func (r *relay) Close() error     { return r.to.Close() }
func (r *relay) Terminate() error { return r.to.Terminate() }

func (r *relay) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	r.chunks.Add(1)
	return r.to.Run(ctx, c, func(res driver.Result) bool {
		r.items.Add(1)
		ok := deliver(res)
		if r.twice && !deliver(res) {
			r.dups.Add(1)
		}
		return ok
	})
}

// openRelay returns a pool from Open whose chunks run on a local pool of
// n workers; the test closes and joins both.
func openRelay(t *testing.T, n int, twice bool) (*pool.Pool, *pool.Pool, *relay) {
	t.Helper()
	local, err := pool.New(pool.Workers(n))
	require.NoError(t, err)
	r := &relay{to: local.Runner(), twice: twice}
	p, err := pool.Open(r)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Close()
		assert.NoError(t, p.Join(testbin.Context(t)))
		// Closing the opened pool closed the local one (the Runner's Close).
		assert.NoError(t, local.Join(testbin.Context(t)))
	})
	return p, local, r
}

func TestOpenMapImapApply(t *testing.T) {
	p, _, r := openRelay(t, 2, false)
	ctx := testbin.Context(t)
	for _, chunk := range []int{0, 1, 7} {
		var opts []pool.MapOption
		if chunk > 0 {
			opts = append(opts, pool.Chunksize(chunk))
		}
		res, err := pool.Map(ctx, p, square, ints(500), opts...)
		require.NoError(t, err)
		for i, v := range res {
			require.Equal(t, i*i, v)
		}
	}
	// The default chunk size is four chunks per worker of the backend.
	r.chunks.Store(0)
	_, err := pool.Map(ctx, p, square, ints(800))
	require.NoError(t, err)
	assert.EqualValues(t, 8, r.chunks.Load())

	i := 0
	for v, err := range pool.Imap(ctx, p, square, ints(300), pool.Chunksize(11)) {
		require.NoError(t, err)
		require.Equal(t, i*i, v)
		i++
	}
	assert.Equal(t, 300, i)
	seen := make([]bool, 300)
	for v, err := range pool.ImapUnordered(ctx, p, ident, ints(300), pool.Chunksize(5)) {
		require.NoError(t, err)
		require.False(t, seen[v])
		seen[v] = true
	}
	assert.NotContains(t, seen, false)

	v, err := pool.Apply(ctx, p, square, 12)
	require.NoError(t, err)
	assert.Equal(t, 144, v)
	ar := pool.ApplyAsync(p, add, pair{A: 1, B: 2, Tag: "x"})
	s, err := ar.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, sum{Sum: 3, Tag: "x!"}, s)
	mr, err := pool.MapAsync(p, strlen, []string{"", "abc"}).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("0"), []byte("3")}, mr)
}

func TestOpenErrorsKeepTheirIndex(t *testing.T) {
	p, _, _ := openRelay(t, 2, false)
	ctx := testbin.Context(t)
	// Map: the lowest failing index, as a loop would report it, from a
	// chunk that does not start at 0.
	_, err := pool.Map(ctx, p, failAt, ints(40), pool.Chunksize(2))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 3, te.Index)
	assert.Contains(t, te.Error(), "task 3: bad 3")

	n := 0
	for v, err := range pool.Imap(ctx, p, failAt, ints(30), pool.Chunksize(4)) {
		if n%7 == 3 {
			require.ErrorAs(t, err, &te, "item %d", n)
			assert.Equal(t, n, te.Index)
		} else {
			require.NoError(t, err)
			assert.Equal(t, n, v)
		}
		n++
	}
	assert.Equal(t, 30, n)

	_, err = pool.Apply(ctx, p, panicky, 2)
	require.ErrorAs(t, err, &te)
	assert.Contains(t, te.Message, "panic: boom")
	assert.True(t, strings.HasPrefix(err.Error(), "pool: task: panic: boom"), err.Error())
	assert.NotEmpty(t, te.Stack)

	// A worker of the local pool dies on item 5 (in the chunk [3, 6)):
	// that item fails with its WorkerDiedError, indexed in the call.
	n = 0
	for v, err := range pool.Imap(ctx, p, killSelf, ints(9), pool.Chunksize(3)) {
		if n == 5 {
			var wd *pool.WorkerDiedError
			require.ErrorAs(t, err, &wd)
			assert.Equal(t, 5, wd.Index)
		} else {
			require.NoError(t, err)
			assert.Equal(t, n, v)
		}
		n++
	}
	assert.Equal(t, 9, n)
}

func TestOpenDeduplicates(t *testing.T) {
	p, _, r := openRelay(t, 2, true)
	ctx := testbin.Context(t)
	res, err := pool.Map(ctx, p, square, ints(1000), pool.Chunksize(13))
	require.NoError(t, err)
	for i, v := range res {
		require.Equal(t, i*i, v)
	}
	// Every result came twice; the pool took the first and refused the
	// second, and counted each once for Progress.
	assert.EqualValues(t, 1000, r.items.Load())
	assert.EqualValues(t, 1000, r.dups.Load())
	var last atomic.Int64
	_, err = pool.Map(ctx, p, ident, ints(100), pool.Progress(func(done, total int) {
		last.Store(int64(done))
	}))
	require.NoError(t, err)
	assert.EqualValues(t, 100, last.Load())
}

func TestOpenCancel(t *testing.T) {
	p, _, _ := openRelay(t, 2, false)
	ctx, cancel := context.WithTimeout(testbin.Context(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := pool.Map(ctx, p, sleepy, []time.Duration{time.Minute, time.Minute, time.Minute}, pool.Chunksize(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 100*time.Millisecond+testbin.Slack)
	// The cancelled tasks' ctx was cancelled in the workers: the pool is
	// free again at once.
	start = time.Now()
	v, err := pool.Apply(testbin.Context(t), p, square, 3)
	require.NoError(t, err)
	assert.Equal(t, 9, v)
	assert.Less(t, time.Since(start), testbin.Slack)

	// A Map item fails: its error, whatever the chunks after it did.
	_, err = pool.Map(testbin.Context(t), p, failAt, ints(40), pool.Chunksize(1))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 3, te.Index)
}

func TestOpenTerminate(t *testing.T) {
	local, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	p, err := pool.Open(&relay{to: local.Runner()})
	require.NoError(t, err)
	ars := make([]*pool.AsyncResult[time.Duration], 50)
	for i := range ars {
		ars[i] = pool.ApplyAsync(p, sleepy, time.Minute)
	}
	mapped := pool.MapAsync(p, sleepy, []time.Duration{time.Hour, time.Hour})
	start := time.Now()
	require.NoError(t, p.Terminate())
	assert.Less(t, time.Since(start), testbin.Slack)
	require.NoError(t, p.Join(testbin.Context(t)))
	require.NoError(t, local.Join(testbin.Context(t)), "Terminate terminates the backend")
	for _, ar := range ars {
		_, err := ar.Get(testbin.Context(t))
		require.ErrorIs(t, err, pool.ErrTerminated)
	}
	_, err = mapped.Get(testbin.Context(t))
	require.ErrorIs(t, err, pool.ErrTerminated)
	_, err = pool.Apply(testbin.Context(t), p, square, 2)
	require.ErrorIs(t, err, pool.ErrClosed)
	require.NoError(t, p.Terminate())
}

func TestOpenCloseFinishesQueuedWork(t *testing.T) {
	local, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	p, err := pool.Open(&relay{to: local.Runner()})
	require.NoError(t, err)
	ar := pool.MapAsync(p, ident, ints(5000), pool.Chunksize(10))
	require.NoError(t, p.Close())
	_, err = pool.Apply(testbin.Context(t), p, square, 2)
	require.ErrorIs(t, err, pool.ErrClosed)
	require.NoError(t, p.Join(testbin.Context(t)))
	res, err := ar.Get(testbin.Context(t))
	require.NoError(t, err)
	assert.Len(t, res, 5000)
	require.NoError(t, local.Join(testbin.Context(t)))
	assert.NoError(t, p.Join(testbin.Context(t)), "Join again")
}

// brokenBackend returns from Run without delivering, with or without an
// error: the pool fails those items, never leaves them pending.
type brokenBackend struct{ err error }

func (b brokenBackend) Workers() int     { return 3 }
func (b brokenBackend) Close() error     { return nil }
func (b brokenBackend) Terminate() error { return nil }
func (b brokenBackend) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	// The first item succeeds; an index outside the chunk is ignored.
	deliver(driver.Result{Index: c.Start, Value: msgp.AppendInt(nil, int64(c.Start))})
	if deliver(driver.Result{Index: c.Start + c.Count}) {
		return errors.New("an index outside the chunk was accepted")
	}
	return b.err
}

func TestOpenBackendFailure(t *testing.T) {
	lost := errors.New("host lost")
	for _, be := range []brokenBackend{{lost}, {nil}} {
		p, err := pool.Open(be)
		require.NoError(t, err)
		n := 0
		for v, err := range pool.Imap(testbin.Context(t), p, ident, ints(20), pool.Chunksize(4)) {
			if n%4 == 0 {
				require.NoError(t, err)
				assert.Equal(t, n, v)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "task ")
				if be.err != nil {
					require.ErrorIs(t, err, lost)
				}
			}
			n++
		}
		assert.Equal(t, 20, n)
		p.Close()
		require.NoError(t, p.Join(testbin.Context(t)))
	}
	_, err := pool.Open(nil)
	require.ErrorIs(t, err, pool.ErrInvalidOption)
}

func TestRunnerBadChunks(t *testing.T) {
	local := newPool(t, pool.Workers(1))
	r := local.Runner()
	ctx := testbin.Context(t)
	var mu sync.Mutex
	var got []driver.Result
	collect := func(res driver.Result) bool {
		mu.Lock()
		defer mu.Unlock()
		res.Value = bytes.Clone(res.Value) // valid only during the call
		got = append(got, res)
		return true
	}
	args := msgp.AppendInt(msgp.AppendInt(nil, 4), 5)
	require.NoError(t, r.Run(ctx, driver.Chunk{Task: "no.such.task", Start: 10, Count: 2, Args: args}, collect))
	require.Len(t, got, 2)
	for i, res := range got {
		var te *pool.TaskError
		require.ErrorAs(t, res.Err, &te)
		assert.Equal(t, 10+i, te.Index)
		assert.Contains(t, te.Message, `no task registered as "no.such.task"`)
	}
	got = nil
	for _, bad := range [][]byte{args[:1], append(args, 0xc1), {0xdc}} {
		err := r.Run(ctx, driver.Chunk{Task: square.Name(), Count: 2, Args: bad}, collect)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "chunk of task")
	}
	assert.Empty(t, got)

	// A valid chunk: results are msgpack, indexed in the caller's call.
	require.NoError(t, r.Run(ctx, driver.Chunk{Task: square.Name(), Start: 7, Count: 2, Args: args}, collect))
	require.Len(t, got, 2)
	for _, res := range got {
		require.NoError(t, res.Err)
		v, _, err := msgp.ReadInt(res.Value)
		require.NoError(t, err)
		x := int64(res.Index - 7 + 4)
		assert.Equal(t, x*x, v)
	}
}

// pipeliner is a relay that asks to keep up to inFlight chunks in Run, and
// measures how many it had at once.
type pipeliner struct {
	relay
	inFlight     int
	now, maxSeen atomic.Int64
}

func (r *pipeliner) InFlight() int { return r.inFlight }

func (r *pipeliner) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for m := r.maxSeen.Load(); n > m && !r.maxSeen.CompareAndSwap(m, n); m = r.maxSeen.Load() {
	}
	time.Sleep(20 * time.Millisecond) // in transit
	return r.relay.Run(ctx, c, deliver)
}

func TestOpenPipeliner(t *testing.T) {
	for _, inFlight := range []int{0, 40} {
		local, err := pool.New(pool.Workers(1))
		require.NoError(t, err)
		var r driver.Runner = &relay{to: local.Runner()}
		pl := &pipeliner{relay: relay{to: local.Runner()}, inFlight: inFlight}
		if inFlight > 0 {
			r = pl
		}
		p, err := pool.Open(r)
		require.NoError(t, err)
		ars := make([]*pool.AsyncResult[int], 100)
		for i := range ars {
			ars[i] = pool.ApplyAsync(p, square, i)
		}
		for i, ar := range ars {
			v, err := ar.Get(testbin.Context(t))
			require.NoError(t, err)
			require.Equal(t, i*i, v)
		}
		p.Close()
		require.NoError(t, p.Join(testbin.Context(t)))
		require.NoError(t, local.Join(testbin.Context(t)))
		if inFlight > 0 {
			assert.Greater(t, pl.maxSeen.Load(), int64(4), "more than four chunks per worker in Run")
			assert.LessOrEqual(t, pl.maxSeen.Load(), int64(inFlight))
		}
	}
}

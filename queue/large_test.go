//go:build linux

package queue_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type largeProdArg struct {
	Q          *queue.Queue[kitem]
	From, N    int
	Size       int
	SmallEvery int // every SmallEvery-th item is small (0: none)
}

func sizeOf(a largeProdArg, i int) int {
	if a.SmallEvery > 0 && i%a.SmallEvery == 0 {
		return 100
	}
	return a.Size
}

var largeProducer = process.Register("queue.largeproducer", func(ctx context.Context, a largeProdArg) error {
	for i := a.From; i < a.From+a.N; i++ {
		if err := a.Q.Put(ctx, kitem{ID: i, Data: pattern(i, sizeOf(a, i))}); err != nil {
			return err
		}
	}
	return nil
})

type largeConsArg struct {
	Q       *queue.Queue[kitem]
	Results *queue.Simple[int]
	Prod    largeProdArg // sizes
}

var largeConsumer = process.Register("queue.largeconsumer", func(ctx context.Context, a largeConsArg) error {
	for {
		it, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if it.ID < 0 {
			return nil
		}
		r := it.ID
		if !it.valid(sizeOf(a.Prod, it.ID)) {
			r = -2 - it.ID
		}
		if err := a.Results.Put(ctx, r); err != nil {
			return err
		}
	}
})

// Several producers write large items (mixed with small ones) at the same
// time and several consumers read them: the writer and reader locks keep
// every item whole across processes, and each producer's items stay in
// order in the pipe.
func TestLargeManyToMany(t *testing.T) {
	ctx := testbin.Context(t)
	const P, C, N = 3, 2, 20
	q, err := queue.New[kitem](0)
	require.NoError(t, err)
	defer q.Close()
	res, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer res.Close()
	shape := largeProdArg{Size: 150 << 10, SmallEvery: 3}
	var prods, cons []*process.Process
	for i := range P {
		a := shape
		a.Q, a.From, a.N = q, i*1000, N
		prods = append(prods, process.New(largeProducer, a))
	}
	for range C {
		cons = append(cons, process.New(largeConsumer, largeConsArg{Q: q, Results: res, Prod: shape}))
	}
	for _, p := range append(prods, cons...) {
		require.NoError(t, p.Start())
	}
	seen := map[int]int{}
	for range P * N {
		r, err := res.Get(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, r, 0, "item %d arrived damaged", -2-r)
		seen[r]++
	}
	for _, p := range prods {
		require.NoError(t, p.Join(ctx))
	}
	for range C {
		require.NoError(t, q.Put(ctx, kitem{ID: -1}))
	}
	for _, p := range cons {
		require.NoError(t, p.Join(ctx))
	}
	for i := range P {
		for j := range N {
			assert.Equal(t, 1, seen[i*1000+j], "item %d", i*1000+j)
		}
	}
}

// Gets with deadlines too short for a large item to arrive give up after
// reading its marker; the item is announced again and taken later, whole,
// once.
func TestLargeGetTinyDeadlines(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[kitem](0)
	require.NoError(t, err)
	defer q.Close()
	const N, size = 8, 2 << 20
	p := process.New(largeProducer, largeProdArg{Q: q, N: N, Size: size})
	require.NoError(t, p.Start())
	seen := map[int]int{}
	timeouts := 0
	for len(seen) < N {
		gctx, cancel := context.WithTimeout(ctx, 300*time.Microsecond)
		it, err := q.Get(gctx)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			timeouts++
			require.NoError(t, ctx.Err())
			continue
		}
		require.True(t, it.valid(size), "item %d", it.ID)
		seen[it.ID]++
		require.Equal(t, 1, seen[it.ID], "item %d twice", it.ID)
	}
	t.Logf("%d timed-out Gets", timeouts)
	require.NoError(t, p.Join(ctx))
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

type simplePutArg struct {
	S    *queue.Simple[[]byte]
	Size int
	N    int
}

var simpleProducer = process.Register("queue.simpleproducer", func(ctx context.Context, a simplePutArg) error {
	for i := range a.N {
		if err := a.S.Put(ctx, pattern(i, a.Size)); err != nil {
			return err
		}
	}
	return nil
})

// Simple carries large items across processes; its Put returns when the item
// is written, so the producer can exit at once.
func TestSimpleLargeAcrossProcesses(t *testing.T) {
	ctx := testbin.Context(t)
	s, err := queue.NewSimple[[]byte]()
	require.NoError(t, err)
	defer s.Close()
	p := process.New(simpleProducer, simplePutArg{S: s, Size: 1 << 20, N: 5})
	require.NoError(t, p.Start())
	for i := range 5 {
		b, err := s.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, pattern(i, 1<<20), b, "item %d", i)
	}
	require.NoError(t, p.Join(ctx))
	assert.True(t, s.Empty())
}

// A Simple Put waiting for room gives up with its ctx and adds nothing.
func TestSimplePutCancel(t *testing.T) {
	s, err := queue.NewSimple[[]byte]()
	require.NoError(t, err)
	defer s.Close()
	// A large item with no reader: Put waits for one.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.Put(ctx, pattern(1, 4<<20))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// Small items until the pipe is full, then one more that times out.
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.Put(ctx, []byte(fmt.Sprint(n)))
		cancel()
		if err != nil {
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
		n++
		require.Less(t, n, 100000)
	}
	// What was put comes out, in order, and nothing else (the cancelled
	// large item left at most a torn remnant, which is skipped).
	for i := range n {
		b, err := s.Get(testbin.Context(t))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(b))
	}
	assert.True(t, s.Empty())
}

// Large items are read into storage that the next large item reuses, and
// encoded into buffers that the next Put reuses: an item returned by Get
// stays as it was whatever comes after it, of every kind of value that
// could alias its encoding.
func TestLargeItemsDoNotAlias(t *testing.T) {
	ctx := testbin.Context(t)
	type rec struct {
		B []byte
		S string
		F []float64
		R [][]byte
	}
	mk := func(i int) rec {
		f := make([]float64, 1000)
		for j := range f {
			f[j] = float64(i*1000 + j)
		}
		return rec{B: pattern(i, 100<<10), S: string(pattern(i+1, 50<<10)), F: f, R: [][]byte{pattern(i+2, 9000), pattern(i+3, 10)}}
	}
	q, err := queue.New[rec](0)
	require.NoError(t, err)
	defer q.Close()
	var got []rec
	for i := range 6 {
		require.NoError(t, q.Put(ctx, mk(i)))
		if i%2 == 1 {
			for range 2 {
				r, err := q.Get(ctx)
				require.NoError(t, err)
				got = append(got, r)
			}
		}
	}
	for i, r := range got {
		assert.True(t, reflect.DeepEqual(mk(i), r), "item %d changed after later items came and went", i)
	}
}

//go:build linux

package queue_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Worker functions, registered at package level so that every process of
// the test binary has them.

type pipeArg struct {
	In  *queue.Queue[int]
	Out *queue.Queue[int]
	N   int
}

// doubler takes N ints from In and puts each doubled into Out.
var doubler = process.Register("queue.doubler", func(ctx context.Context, a pipeArg) error {
	for range a.N {
		v, err := a.In.Get(ctx)
		if err != nil {
			return err
		}
		if err := a.Out.Put(ctx, 2*v); err != nil {
			return err
		}
	}
	return nil
})

// topLevel receives the queue as the whole argument.
var topLevel = process.Register("queue.toplevel", func(ctx context.Context, q *queue.Queue[string]) error {
	return q.Put(ctx, fmt.Sprintf("top from %d", process.Current().Pid))
})

type anyArg struct {
	Q any
	J any
	S any
}

// viaInterface receives queues in interface-typed fields: they arrive as the
// [any] instantiations.
var viaInterface = process.Register("queue.viainterface", func(ctx context.Context, a anyArg) error {
	q, ok := a.Q.(*queue.Queue[any])
	if !ok {
		return fmt.Errorf("Q arrived as %T", a.Q)
	}
	j, ok := a.J.(*queue.Joinable[any])
	if !ok {
		return fmt.Errorf("J arrived as %T", a.J)
	}
	s, ok := a.S.(*queue.Simple[any])
	if !ok {
		return fmt.Errorf("S arrived as %T", a.S)
	}
	if err := q.Put(ctx, "via interface"); err != nil {
		return err
	}
	if err := j.Put(ctx, "joinable via interface"); err != nil {
		return err
	}
	return s.Put(ctx, "simple via interface")
})

func TestPassTopLevelAndField(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[string](0)
	require.NoError(t, err)
	defer q.Close()
	p := process.New(topLevel, q)
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctx))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("top from %d", p.Pid()), v)

	in, err := queue.New[int](0)
	require.NoError(t, err)
	defer in.Close()
	out, err := queue.New[int](0)
	require.NoError(t, err)
	defer out.Close()
	p = process.New(doubler, pipeArg{In: in, Out: out, N: 100})
	require.NoError(t, p.Start())
	for i := range 100 {
		require.NoError(t, in.Put(ctx, i))
	}
	for i := range 100 {
		v, err := out.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2*i, v, "FIFO through a child")
	}
	require.NoError(t, p.Join(ctx))
}

func TestPassInterfaceField(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[string](0)
	require.NoError(t, err)
	defer q.Close()
	j, err := queue.NewJoinable[string](0)
	require.NoError(t, err)
	defer j.Close()
	s, err := queue.NewSimple[string]()
	require.NoError(t, err)
	defer s.Close()
	p := process.New(viaInterface, anyArg{Q: q, J: j, S: s})
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctx))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "via interface", v)
	v, err = j.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "joinable via interface", v)
	require.NoError(t, j.TaskDone())
	require.NoError(t, j.Join(ctx))
	v, err = s.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "simple via interface", v)
}

type prodArg struct {
	Q     *queue.Queue[int64]
	ID, N int
	Stops int // stop markers (-1) to put after the items
}

var producer = process.Register("queue.producer", func(ctx context.Context, a prodArg) error {
	for i := range a.N {
		if err := a.Q.Put(ctx, int64(a.ID)<<32|int64(i)); err != nil {
			return err
		}
	}
	for range a.Stops {
		if err := a.Q.Put(ctx, -1); err != nil {
			return err
		}
	}
	return nil
})

type consArg struct {
	Q   *queue.Queue[int64]
	Out *queue.Queue[[]int64]
}

// consumer takes items until a stop marker and reports what it took.
var consumer = process.Register("queue.consumer", func(ctx context.Context, a consArg) error {
	var got []int64
	for {
		v, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if v == -1 {
			break
		}
		got = append(got, v)
	}
	return a.Out.Put(ctx, got)
})

// TestManyToMany: 4 producers × 10,000 items into 4 consumers; every item
// arrives exactly once, and each producer's items arrive in order at each
// consumer.
func TestManyToMany(t *testing.T) {
	const P, C, N = 4, 4, 10000
	ctx := testbin.Context(t)
	q, err := queue.New[int64](0)
	require.NoError(t, err)
	defer q.Close()
	out, err := queue.New[[]int64](0)
	require.NoError(t, err)
	defer out.Close()
	var procs []*process.Process
	for i := range C {
		procs = append(procs, process.New(consumer, consArg{Q: q, Out: out}, process.WithName(fmt.Sprint("consumer-", i))))
	}
	for i := range P {
		procs = append(procs, process.New(producer, prodArg{Q: q, ID: i, N: N}))
	}
	for _, p := range procs {
		require.NoError(t, p.Start())
	}
	for _, p := range procs[C:] {
		require.NoError(t, p.Join(ctx))
	}
	for range C {
		require.NoError(t, q.Put(ctx, -1))
	}
	seen := make(map[int64]int, P*N)
	for range C {
		got, err := out.Get(ctx)
		require.NoError(t, err)
		last := map[int64]int64{}
		for _, v := range got {
			seen[v]++
			src, i := v>>32, v&0xffffffff
			if l, ok := last[src]; ok && i <= l {
				t.Errorf("producer %d: item %d after %d at one consumer", src, i, l)
			}
			last[src] = i
		}
	}
	for _, p := range procs[:C] {
		require.NoError(t, p.Join(ctx))
	}
	assert.Len(t, seen, P*N)
	var dup []int64
	for v, n := range seen {
		if n != 1 {
			dup = append(dup, v)
		}
	}
	sort.Slice(dup, func(i, j int) bool { return dup[i] < dup[j] })
	assert.Empty(t, dup, "items seen more than once")
	assert.Equal(t, 0, q.Len())
}

type floodArg struct {
	Q *queue.Queue[int]
	N int
}

// flood puts N items and returns at once: more than the pipe holds, so most
// are buffered and flushed by the exit hook while the parent reads.
var flood = process.Register("queue.flood", func(ctx context.Context, a floodArg) error {
	for i := range a.N {
		if err := a.Q.Put(ctx, i); err != nil {
			return err
		}
	}
	return nil
})

func TestWorkerFlushesAtExit(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	const N = 3000
	p := process.New(flood, floodArg{Q: q, N: N})
	require.NoError(t, p.Start())
	// The worker's function returns long before its items are all in the
	// pipe; it must still be there, flushing, until we read them.
	time.Sleep(200 * time.Millisecond)
	assert.True(t, p.IsAlive(), "the worker waits for its buffered items")
	for i := range N {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, p.Join(ctx))
}

//go:build linux

package cluster_test

import (
	"context"
	"errors"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Child processes get the server's URL and the queue names: a cluster
// queue is opened by name, in any process on any host.
type queueArg struct {
	URL   string
	In    string
	Out   string
	Extra map[string]time.Duration
}

// consumer takes ints from In until it gets -1 and puts each into Out.
var consumer = process.Register("cluster.consumer", func(ctx context.Context, a queueArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	in, err := cluster.OpenQueue[int](ctx, c, a.In)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := cluster.OpenQueue[int](ctx, c, a.Out)
	if err != nil {
		return err
	}
	defer out.Close()
	for {
		v, err := in.Get(ctx)
		if err != nil {
			return err
		}
		if v < 0 {
			return out.Close()
		}
		if err := out.Put(ctx, v); err != nil {
			return err
		}
	}
})

func TestExactlyOnceAcrossConsumers(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	const n, workers = 3000, 3
	in, err := cluster.OpenQueue[int](ctx, c, "in")
	require.NoError(t, err)
	defer in.Close()
	out, err := cluster.OpenQueue[int](ctx, c, "out")
	require.NoError(t, err)
	defer out.Close()
	var ps []*process.Process
	for range workers {
		p := process.New(consumer, queueArg{URL: s.URL(), In: "in", Out: "out"})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	for i := range n {
		require.NoError(t, in.Put(ctx, i))
	}
	for range workers {
		require.NoError(t, in.Put(ctx, -1))
	}
	require.NoError(t, in.Flush(ctx))
	got := make([]int, 0, n)
	for range n {
		v, err := out.Get(ctx)
		if err != nil {
			t.Fatalf("after %d items: %v\n%s%s", len(got), err, cluster.DebugState(c, "in"), cluster.DebugState(c, "out"))
		}
		got = append(got, v)
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
	sort.Ints(got)
	for i := range n {
		require.Equal(t, i, got[i], "every item exactly once")
	}
	_, err = out.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty, "no item twice")
	_, err = in.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

// holder takes one item from the Joinable In, reports it on Out, and waits
// to be killed without marking it done.
var holder = process.Register("cluster.holder", func(ctx context.Context, a queueArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	in, err := cluster.OpenJoinable[int](ctx, c, a.In, cluster.AckWait(a.Extra["AckWait"]), cluster.MaxDeliver(int(a.Extra["MaxDeliver"])))
	if err != nil {
		return err
	}
	out, err := cluster.OpenQueue[int](ctx, c, a.Out)
	if err != nil {
		return err
	}
	v, err := in.Get(ctx)
	if err != nil {
		return err
	}
	if err := out.Put(ctx, v); err != nil {
		return err
	}
	if err := out.Flush(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// killHolder starts a holder, waits until it holds an item, and SIGKILLs it.
func killHolder(t *testing.T, url string, ackWait time.Duration, maxDeliver int) int {
	t.Helper()
	ctx := testbin.Context(t)
	c := connect(t, url)
	took, err := cluster.OpenQueue[int](ctx, c, "took")
	require.NoError(t, err)
	defer took.Close()
	p := process.New(holder, queueArg{URL: url, In: "j", Out: "took",
		Extra: map[string]time.Duration{"AckWait": ackWait, "MaxDeliver": time.Duration(maxDeliver)}})
	require.NoError(t, p.Start())
	v, err := took.Get(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Kill())
	var exitErr *process.ExitError
	require.ErrorAs(t, p.Join(ctx), &exitErr)
	return v
}

func TestJoinableKilledConsumerRedelivered(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	const ackWait = 500 * time.Millisecond
	j, err := cluster.OpenJoinable[int](ctx, c, "j", cluster.AckWait(ackWait), cluster.MaxDeliver(3))
	require.NoError(t, err)
	defer j.Close()
	require.NoError(t, j.Put(ctx, 42))
	require.NoError(t, j.Flush(ctx))
	v := killHolder(t, s.URL(), ackWait, 3)
	require.Equal(t, 42, v)
	killed := time.Now()
	// The item is not done: Join waits.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, j.Join(short), context.DeadlineExceeded)
	// It comes back after AckWait.
	v, err = j.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	assert.Less(t, time.Since(killed), ackWait+testbin.Slack)
	require.NoError(t, j.TaskDone())
	require.NoError(t, j.Join(ctx))
}

func TestJoinableMaxDeliverDoesNotHangJoin(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	const ackWait = 300 * time.Millisecond
	j, err := cluster.OpenJoinable[int](ctx, c, "j", cluster.AckWait(ackWait), cluster.MaxDeliver(2))
	require.NoError(t, err)
	defer j.Close()
	require.NoError(t, j.Put(ctx, 1))
	require.NoError(t, j.Flush(ctx))
	// Item 1 is delivered twice, each time to a consumer that dies.
	require.Equal(t, 1, killHolder(t, s.URL(), ackWait, 2))
	require.Equal(t, 1, killHolder(t, s.URL(), ackWait, 2))
	// The next Get that receives it drops it (it was delivered MaxDeliver
	// times) and goes on waiting for a live item.
	short, cancel := context.WithTimeout(ctx, 2*ackWait+testbin.Slack)
	defer cancel()
	_, err = j.Get(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	err = j.Join(ctx)
	require.ErrorIs(t, err, cluster.ErrLost, cluster.DebugState(c, "j"))
	assert.Contains(t, err.Error(), "1 items")
	// Reported once per handle; the queue is empty.
	require.NoError(t, j.Join(ctx))
	_, err = j.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

func TestRestartKeepsItems(t *testing.T) {
	ctx := testbin.Context(t)
	dir := t.TempDir()
	s, err := cluster.Start(ctx, cluster.StoreDir(dir))
	require.NoError(t, err)
	c, err := cluster.Connect(ctx, s.URL())
	require.NoError(t, err)
	q, err := cluster.OpenQueue[string](ctx, c, "keep")
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, q.Put(ctx, string(rune('a'+i%26))))
	}
	require.NoError(t, q.Close())
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	_, err = os.Stat(dir)
	require.NoError(t, err, "a StoreDir given is not removed")

	s = startServer(t, cluster.StoreDir(dir))
	c = connect(t, s.URL())
	q, err = cluster.OpenQueue[string](ctx, c, "keep")
	require.NoError(t, err)
	defer q.Close()
	assert.Equal(t, 100, q.Len())
	for i := range 100 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, string(rune('a'+i%26)), v)
	}
}

func TestDeleteQueue(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	q, err := cluster.OpenQueue[int](ctx, c, "gone")
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, q.Put(ctx, 1))
	require.NoError(t, q.Flush(ctx))
	require.NoError(t, cluster.DeleteQueue(ctx, c, "gone"))
	require.NoError(t, cluster.DeleteQueue(ctx, c, "gone"), "deleting twice")
	q2, err := cluster.OpenQueue[int](ctx, c, "gone")
	require.NoError(t, err)
	defer q2.Close()
	assert.Equal(t, 0, q2.Len())
	assert.Error(t, cluster.DeleteQueue(ctx, c, "bad name"))
}

func TestOpenQueueOptions(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	_, err := cluster.OpenQueue[int](ctx, c, "o", cluster.AckWait(time.Second))
	require.ErrorIs(t, err, cluster.ErrInvalidOption)
	assert.Contains(t, err.Error(), "OpenQueue")
	q, err := cluster.OpenQueue[int](ctx, c, "o", cluster.MaxSize(2))
	require.NoError(t, err)
	defer q.Close()
	_, err = cluster.OpenQueue[int](ctx, c, "o", cluster.MaxSize(3))
	require.ErrorIs(t, err, cluster.ErrInvalidOption)
	q2, err := cluster.OpenQueue[int](ctx, c, "o") // the existing bound holds
	require.NoError(t, err)
	defer q2.Close()
	require.NoError(t, q2.TryPut(1))
	require.NoError(t, q2.TryPut(2))
	assert.ErrorIs(t, q2.TryPut(3), queue.ErrFull)
	_, err = cluster.OpenQueue[int](ctx, c, "a.b")
	assert.Error(t, err)
}

func TestTooLarge(t *testing.T) {
	ctx := testbin.Context(t)
	_, c := setup(t)
	q, err := cluster.OpenQueue[[]byte](ctx, c, "big")
	require.NoError(t, err)
	defer q.Close()
	err = q.Put(ctx, make([]byte, 2<<20))
	require.ErrorIs(t, err, queue.ErrTooLarge)
	assert.Contains(t, err.Error(), "1048576")
	// Just under the limit passes whole.
	big := make([]byte, 1<<20-16)
	big[len(big)-1] = 7
	require.NoError(t, q.Put(ctx, big))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, big, v)
	assert.False(t, errors.Is(err, queue.ErrTooLarge))
}

//go:build linux

package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fifo is what a local queue and a cluster queue have in common: the
// conformance cases below run against both.
type fifo interface {
	Put(ctx context.Context, v int) error
	TryPut(v int) error
	Get(ctx context.Context) (int, error)
	TryGet() (int, error)
	Len() int
	Empty() bool
	Full() bool
	Flush(ctx context.Context) error
	Close() error
}

type joinableFIFO interface {
	fifo
	TaskDone() error
	Join(ctx context.Context) error
}

// kinds makes queues of each implementation for one test.
var kinds = []struct {
	name     string
	open     func(t *testing.T, maxsize int) fifo
	joinable func(t *testing.T, maxsize int) joinableFIFO
}{
	{
		name: "local",
		open: func(t *testing.T, maxsize int) fifo {
			q, err := queue.New[int](maxsize)
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			return q
		},
		joinable: func(t *testing.T, maxsize int) joinableFIFO {
			q, err := queue.NewJoinable[int](maxsize)
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			return q
		},
	},
	{
		name: "cluster",
		open: func(t *testing.T, maxsize int) fifo {
			_, c := setup(t)
			q, err := cluster.OpenQueue[int](testbin.Context(t), c, "q", cluster.MaxSize(maxsize))
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			return q
		},
		joinable: func(t *testing.T, maxsize int) joinableFIFO {
			_, c := setup(t)
			q, err := cluster.OpenJoinable[int](testbin.Context(t), c, "j", cluster.MaxSize(maxsize))
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			return q
		},
	},
}

func TestConformanceFIFO(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := testbin.Context(t)
			q := k.open(t, 0)
			for i := range 100 {
				require.NoError(t, q.Put(ctx, i))
			}
			require.NoError(t, q.Flush(ctx))
			assert.Equal(t, 100, q.Len())
			assert.False(t, q.Empty())
			assert.False(t, q.Full())
			for i := range 100 {
				v, err := q.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, i, v)
			}
			_, err := q.TryGet()
			assert.ErrorIs(t, err, queue.ErrEmpty)
			assert.True(t, q.Empty())
		})
	}
}

func TestConformanceBounded(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := testbin.Context(t)
			q := k.open(t, 2)
			require.NoError(t, q.TryPut(1))
			require.NoError(t, q.Put(ctx, 2))
			assert.True(t, q.Full())
			assert.ErrorIs(t, q.TryPut(3), queue.ErrFull)
			// A blocked Put ends with its ctx, adding nothing.
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := q.Put(short, 3)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), 100*time.Millisecond+testbin.Slack)
			assert.Equal(t, 2, q.Len())
			// A blocked Put goes on once a Get makes room.
			done := make(chan error, 1)
			go func() { done <- q.Put(ctx, 3) }()
			v, err := q.Get(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, v)
			require.NoError(t, <-done)
			for _, want := range []int{2, 3} {
				v, err := q.Get(ctx)
				require.NoError(t, err)
				assert.Equal(t, want, v)
			}
		})
	}
}

func TestConformanceGetDeadline(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			q := k.open(t, 0)
			_, err := q.TryGet()
			assert.ErrorIs(t, err, queue.ErrEmpty)
			ctx, cancel := context.WithTimeout(testbin.Context(t), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = q.Get(ctx)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
			assert.Less(t, time.Since(start), 200*time.Millisecond+testbin.Slack)
			// The queue still works, and an item put after the failed Get
			// is not lost to it.
			require.NoError(t, q.Put(testbin.Context(t), 7))
			v, err := q.Get(testbin.Context(t))
			require.NoError(t, err)
			assert.Equal(t, 7, v)
		})
	}
}

func TestConformanceGetCancel(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			q := k.open(t, 0)
			ctx, cancel := context.WithCancel(testbin.Context(t))
			done := make(chan error, 1)
			go func() { _, err := q.Get(ctx); done <- err }()
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, context.Canceled)
				assert.Less(t, time.Since(start), testbin.Slack)
			case <-time.After(testbin.Timeout):
				t.Fatal("Get did not return after cancel")
			}
			require.NoError(t, q.Put(testbin.Context(t), 8))
			v, err := q.Get(testbin.Context(t))
			require.NoError(t, err)
			assert.Equal(t, 8, v)
		})
	}
}

func TestConformanceClosed(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := testbin.Context(t)
			q := k.open(t, 0)
			require.NoError(t, q.Close())
			assert.ErrorIs(t, q.Put(ctx, 1), queue.ErrClosed)
			_, err := q.Get(ctx)
			assert.ErrorIs(t, err, queue.ErrClosed)
			_, err = q.TryGet()
			assert.ErrorIs(t, err, queue.ErrClosed)
			assert.NoError(t, q.Close())
		})
	}
}

func TestConformanceCloseEndsBlockedGet(t *testing.T) {
	for _, k := range kinds {
		if k.name == "local" {
			continue // a local Close ends this process's puts, not its Gets
		}
		t.Run(k.name, func(t *testing.T) {
			q := k.open(t, 0)
			done := make(chan error, 1)
			go func() { _, err := q.Get(testbin.Context(t)); done <- err }()
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, q.Close())
			assert.ErrorIs(t, <-done, queue.ErrClosed)
		})
	}
}

func TestConformanceJoinable(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := testbin.Context(t)
			q := k.joinable(t, 0)
			assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
			require.NoError(t, q.Join(ctx), "Join of an empty queue")
			for i := range 5 {
				require.NoError(t, q.Put(ctx, i))
			}
			require.NoError(t, q.Flush(ctx))
			joined := make(chan error, 1)
			go func() { joined <- q.Join(ctx) }()
			for i := range 5 {
				v, err := q.Get(ctx)
				require.NoError(t, err)
				assert.Equal(t, i, v)
				select {
				case err := <-joined:
					t.Fatalf("Join returned with %d tasks not done: %v", 5-i, err)
				default:
				}
				require.NoError(t, q.TaskDone())
			}
			select {
			case err := <-joined:
				require.NoError(t, err)
			case <-time.After(testbin.Timeout):
				t.Fatal("Join did not return")
			}
			assert.ErrorIs(t, q.TaskDone(), queue.ErrTaskDone)
		})
	}
}

func TestConformanceEncodeError(t *testing.T) {
	// A value msgpack cannot encode is an error at Put, and nothing is added.
	ctx := testbin.Context(t)
	_, c := setup(t)
	q, err := cluster.OpenQueue[any](ctx, c, "enc")
	require.NoError(t, err)
	defer q.Close()
	assert.Error(t, q.Put(ctx, func() {}))
	lq, err := queue.New[any](0)
	require.NoError(t, err)
	defer lq.Close()
	assert.Error(t, lq.Put(ctx, func() {}))
	assert.Equal(t, 0, q.Len())
	assert.Equal(t, 0, lq.Len())
	_ = fmt.Sprint()
}

//go:build linux

package queue_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type allArg struct {
	Q *queue.Queue[[]byte]
	J *queue.Joinable[int]
	S *queue.Simple[string]
}

var noop = process.Register("queue.noop", func(context.Context, struct{}) error { return nil })

// useAll uses every kind of queue, large items included, then returns
// without closing (the worker's exit releases everything).
var useAll = process.Register("queue.useall", func(ctx context.Context, a allArg) error {
	b, err := a.Q.Get(ctx)
	if err != nil {
		return err
	}
	if err := a.Q.Put(ctx, b); err != nil {
		return err
	}
	v, err := a.J.Get(ctx)
	if err != nil {
		return err
	}
	if err := a.J.TaskDone(); err != nil {
		return err
	}
	return a.S.Put(ctx, strings.Repeat("s", v))
})

// Queues leave no descriptor open once closed, in this process, after
// being passed to a child and used with large items; and nothing in the
// file system: every descriptor a queue opens is a pipe, an eventfd or a
// memfd.
func TestNoLeaks(t *testing.T) {
	ctx := testbin.Context(t)
	// The process package keeps /dev/null open once it started a child.
	warm := process.New(noop, struct{}{})
	require.NoError(t, warm.Start())
	require.NoError(t, warm.Join(ctx))
	before := testbin.FDCount(t)
	beforeList := fdList()
	for range 3 {
		q, err := queue.New[[]byte](0)
		require.NoError(t, err)
		j, err := queue.NewJoinable[int](2)
		require.NoError(t, err)
		s, err := queue.NewSimple[string]()
		require.NoError(t, err)
		// What the queues hold open: pipes, eventfds, memfds only.
		for _, l := range strings.Split(fdList(), "\n") {
			if l == "" || strings.HasSuffix(l, "-> ") || strings.Contains(beforeList, l) {
				continue
			}
			target := l[strings.Index(l, "-> ")+3:]
			ok := strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "anon_inode:[eventfd]") ||
				strings.HasPrefix(target, "/memfd:mpgo-queue")
			assert.True(t, ok, "a queue holds %q open", target)
		}
		p := process.New(useAll, allArg{Q: q, J: j, S: s})
		require.NoError(t, p.Start())
		require.NoError(t, q.Put(ctx, pattern(1, 300<<10)))
		require.NoError(t, j.Put(ctx, 5000))
		v, err := s.Get(ctx)
		require.NoError(t, err)
		assert.Len(t, v, 5000)
		b, err := q.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, pattern(1, 300<<10), b)
		require.NoError(t, j.Join(ctx))
		require.NoError(t, p.Join(ctx))
		require.NoError(t, q.Close())
		require.NoError(t, j.Close())
		require.NoError(t, s.Close())
	}
	if after := testbin.FDCount(t); after != before {
		t.Errorf("%d descriptors before, %d after:\n%s", before, after, fdList())
	}
	// memfds leave nothing under /dev/shm or anywhere else.
	if ents, err := os.ReadDir("/dev/shm"); err == nil {
		for _, e := range ents {
			assert.NotContains(t, e.Name(), "mpgo-queue")
		}
	}
}

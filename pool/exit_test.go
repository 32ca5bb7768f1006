//go:build linux

package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leaveOpen makes a pool, uses it, sends its workers' pids and returns
// without closing it: the worker's exit work (process.Shutdown) must not
// wait for the pool's workers, which wait for tasks.
var leaveOpen = process.Register("test.leaveOpen", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		return err
	}
	pids, err := pool.Map(ctx, p, pid, []int{0, 1, 2, 3})
	if err != nil {
		return err
	}
	return c.Send(pids)
})

func TestShutdownTerminatesRunningPool(t *testing.T) {
	mine, theirs, err := pipe.Pipe()
	require.NoError(t, err)
	defer mine.Close()
	owner := process.New(leaveOpen, theirs)
	require.NoError(t, owner.Start())
	theirs.Close()
	var pids []int
	require.NoError(t, mine.Recv(&pids))
	start := time.Now()
	// Before the exit hook, the owner sat in Shutdown for its full minute.
	require.NoError(t, owner.Join(testbin.ContextFor(t, 10*time.Second)))
	assert.Less(t, time.Since(start), 2*time.Second+testbin.Slack)
	for _, pid := range pids {
		assert.False(t, alive(pid), "worker %d outlived its pool's owner", pid)
	}
}

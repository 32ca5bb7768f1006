//go:build linux

package pool_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// killStorm SIGKILLs a random child of this process (a worker, or one
// still starting) every period until ctx ends, and returns how many it
// killed.
func killStorm(ctx context.Context, period time.Duration) int {
	n := 0
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
		if kids := testbin.LiveChildren(); len(kids) > 0 {
			if syscall.Kill(kids[rand.IntN(len(kids))], syscall.SIGKILL) == nil {
				n++
			}
		}
	}
}

// Under a storm of SIGKILLs (a random worker every 5 ms, new ones killed
// while they start) the pool never breaks for good: every Imap index
// yields its result or an error, never fewer values than arguments; once
// the storm stops, a full Map succeeds.
func TestKillStormPoolRecovers(t *testing.T) {
	p := newPool(t, pool.Workers(3))
	ctx := testbin.Context(t)
	stormCtx, stop := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer stop()
	var wg sync.WaitGroup
	var kills int
	wg.Add(1)
	go func() {
		defer wg.Done()
		kills = killStorm(stormCtx, 5*time.Millisecond)
	}()
	calls, results, failures := 0, 0, 0
	for stormCtx.Err() == nil {
		const n = 2000
		got := 0
		for v, err := range pool.Imap(ctx, p, square, ints(n), pool.Chunksize(50)) {
			if err != nil {
				failures++
			} else {
				require.Equal(t, got*got, v)
				results++
			}
			got++
		}
		require.Equal(t, n, got, "an Imap of %d arguments yielded %d values", n, got)
		calls++
	}
	wg.Wait()
	t.Logf("storm: %d kills, %d Imap calls, %d results, %d errors", kills, calls, results, failures)
	require.Greater(t, kills, 20, "the storm killed workers")

	// The storm is over: the pool works again, with every worker.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second+testbin.Slack)
	defer cancel()
	res, err := pool.Map(rctx, p, square, ints(10_000))
	require.NoError(t, err)
	require.Len(t, res, 10_000)
	assert.Equal(t, 9999*9999, res[9999])
	// Every slot gets its worker back, once its last delayed start (at
	// most 500 ms) is due: three sleeping tasks run on three workers.
	for {
		pids, err := pool.Map(rctx, p, sleepyPid, []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}, pool.Chunksize(1))
		require.NoError(t, err, "three workers never ran at once again")
		if len(map[int]bool{pids[0]: true, pids[1]: true, pids[2]: true}) == 3 {
			break
		}
	}
}

// sleepyPid sleeps, then returns its worker's pid: three at once run on
// three workers.
var sleepyPid = pool.Register("test.sleepyPid", func(ctx context.Context, d time.Duration) (int, error) {
	time.Sleep(d)
	return syscall.Getpid(), nil
})

// Terminate in a storm, while slots wait to start their workers again,
// returns promptly and Join sees the pool gone: the pending starts are
// cancelled and no longer count as live workers (were they still counted,
// Terminate would wait its 10 s and Join for ever).
func TestTerminateCancelsDelayedRestarts(t *testing.T) {
	p, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	ctx := testbin.Context(t)
	stormCtx, stop := context.WithTimeout(ctx, 400*time.Millisecond)
	defer stop()
	busy := pool.MapAsync(p, sleepy, []time.Duration{time.Hour, time.Hour, time.Hour})
	require.Positive(t, killStorm(stormCtx, 2*time.Millisecond), "the storm killed workers")
	start := time.Now()
	require.NoError(t, p.Terminate())
	require.NoError(t, p.Join(ctx))
	assert.Less(t, time.Since(start), testbin.Slack)
	_, err = busy.Get(ctx)
	require.Error(t, err)
}

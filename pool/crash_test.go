//go:build linux

package pool_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// alive reports whether a process with this pid exists (and is not a
// zombie waiting for us).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2] != 'Z'
		}
	}
	return true
}

func TestWorkerExitFailsOnlyItsTask(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	start := time.Now()
	_, err := pool.Apply(testbin.Context(t), p, exitWith, 3)
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	assert.Equal(t, 0, wd.Index)
	assert.Equal(t, 3, wd.Code)
	assert.Equal(t, syscall.Signal(0), wd.Signal)
	assert.Positive(t, wd.Pid)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Contains(t, err.Error(), "exited with code 3")
	// The next map on the same pool succeeds, on a replacement worker.
	res, err := pool.Map(testbin.Context(t), p, exitWith, []int{-1, -1, -1, -1}, pool.Chunksize(1))
	require.NoError(t, err)
	assert.NotContains(t, res, wd.Pid)
}

func TestWorkerSIGKILLFailsOnlyItsTask(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	start := time.Now()
	// In a map: the one item fails, every other item completes, in order.
	n := 0
	for r, err := range pool.Imap(testbin.Context(t), p, killSelf, ints(40), pool.Chunksize(4)) {
		if n == 5 {
			var wd *pool.WorkerDiedError
			require.ErrorAs(t, err, &wd)
			assert.Equal(t, 5, wd.Index)
			assert.Equal(t, syscall.SIGKILL, wd.Signal)
			assert.Equal(t, -9, wd.Code)
		} else {
			require.NoError(t, err, "item %d", n)
			assert.Equal(t, n, r)
		}
		n++
	}
	assert.Equal(t, 40, n)
	assert.Less(t, time.Since(start), 5*time.Second)
	// Map reports it as the lowest failed index, and the pool goes on.
	_, err := pool.Map(testbin.Context(t), p, killSelf, ints(10))
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	assert.Equal(t, 5, wd.Index)
	res, err := pool.Map(testbin.Context(t), p, square, ints(100))
	require.NoError(t, err)
	assert.Equal(t, 99*99, res[99])
}

// crashBurst kills its worker on every multiple of 10, after the others in
// its chunk ran: their results must survive in the shared segment.
var crashBurst = pool.Register("test.crashBurst", func(ctx context.Context, x int) (int, error) {
	if x%10 == 9 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
	return x * 2, nil
})

func TestResultsBeforeACrashSurvive(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	n := 0
	for r, err := range pool.Imap(testbin.Context(t), p, crashBurst, ints(60), pool.Chunksize(10)) {
		if n%10 == 9 {
			var wd *pool.WorkerDiedError
			require.ErrorAs(t, err, &wd, "item %d", n)
			assert.Equal(t, n, wd.Index)
		} else {
			require.NoError(t, err, "item %d", n)
			assert.Equal(t, 2*n, r)
		}
		n++
	}
	assert.Equal(t, 60, n)
}

func TestTaskTimeout(t *testing.T) {
	p := newPool(t, pool.Workers(2), pool.TaskTimeout(300*time.Millisecond))
	before, err := pool.Map(testbin.Context(t), p, pid, ints(2), pool.Chunksize(1))
	require.NoError(t, err)
	start := time.Now()
	args := []time.Duration{10 * time.Millisecond, time.Minute, 20 * time.Millisecond, 100 * time.Millisecond}
	var errs []error
	for _, err := range pool.Imap(testbin.Context(t), p, sleepy, args, pool.Chunksize(1)) {
		errs = append(errs, err)
	}
	elapsed := time.Since(start)
	require.Len(t, errs, 4)
	assert.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], pool.ErrTimeout)
	assert.NoError(t, errs[2])
	assert.NoError(t, errs[3])
	assert.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	assert.Less(t, elapsed, 2*time.Second)
	after, err := pool.Map(testbin.Context(t), p, pid, ints(2), pool.Chunksize(1))
	require.NoError(t, err)
	assert.NotEqual(t, before, after, "the timed-out worker was not replaced")
}

// hog allocates mib MiB and keeps it. The pages are never touched: the
// limit counts mapped memory, and touching would only cost time.
var hog = pool.Register("test.hog", func(ctx context.Context, mib int) (int, error) {
	var keep [][]byte
	for range mib {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.KeepAlive(keep)
	return len(keep), nil
})

func TestMemoryLimit(t *testing.T) {
	if testbin.RaceEnabled { // the race detector's shadow memory counts against RLIMIT_DATA
		t.Skip("the race detector's shadow memory counts against RLIMIT_DATA")
	}
	p := newPool(t, pool.Workers(1), pool.MemoryLimit(256<<20))
	r, err := pool.Apply(testbin.Context(t), p, hog, 64)
	require.NoError(t, err)
	assert.Equal(t, 64, r)
	_, err = pool.Apply(testbin.Context(t), p, hog, 4096)
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	assert.Equal(t, 2, wd.Code)
	assert.Contains(t, err.Error(), "MemoryLimit")
	r, err = pool.Apply(testbin.Context(t), p, hog, 64)
	require.NoError(t, err)
	assert.Equal(t, 64, r)
}

var spin = pool.Register("test.spin", func(ctx context.Context, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	n := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n++
	}
	return n, nil
})

func TestCPUTime(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU")
	}
	p := newPool(t, pool.Workers(1), pool.CPUTime(time.Second))
	// Short tasks add up past a second in one worker without harm: the
	// limit is per task.
	for range 3 {
		_, err := pool.Apply(testbin.Context(t), p, spin, 400*time.Millisecond)
		require.NoError(t, err)
	}
	start := time.Now()
	_, err := pool.Apply(testbin.Context(t), p, spin, 20*time.Second)
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	// The limit, not the end of the spin, ended the task. How long a
	// second of CPU takes in wall time depends on the machine's load: the
	// only bound is the spin's own length.
	assert.Contains(t, err.Error(), "CPU time")
	assert.Less(t, time.Since(start), 20*time.Second)
	_, err = pool.Apply(testbin.Context(t), p, spin, time.Millisecond)
	require.NoError(t, err)
}

func TestTerminate(t *testing.T) {
	p, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	pids, err := pool.Map(testbin.Context(t), p, pid, ints(2), pool.Chunksize(1))
	require.NoError(t, err)
	// Python conformance: terminate with 10k queued tasks returns promptly.
	ars := make([]*pool.AsyncResult[time.Duration], 10000)
	for i := range ars {
		ars[i] = pool.ApplyAsync(p, sleepy, time.Second)
	}
	mapped := pool.MapAsync(p, sleepy, []time.Duration{time.Hour, time.Hour})
	start := time.Now()
	require.NoError(t, p.Terminate())
	assert.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, p.Join(testbin.Context(t)))
	for _, ar := range ars {
		require.True(t, ar.Ready())
		_, err := ar.Get(testbin.Context(t))
		require.ErrorIs(t, err, pool.ErrTerminated)
	}
	_, err = mapped.Get(testbin.Context(t))
	require.ErrorIs(t, err, pool.ErrTerminated)
	for _, pid := range pids {
		assert.False(t, alive(pid), "worker %d outlived Terminate", pid)
	}
	require.NoError(t, p.Terminate())
	_, err = pool.Apply(testbin.Context(t), p, square, 2)
	require.ErrorIs(t, err, pool.ErrClosed)
}

// poolOwner starts a pool, reports its workers' pids and waits to be killed.
var poolOwner = process.Register("test.poolOwner", func(ctx context.Context, c *pipe.Conn) error {
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		return err
	}
	pids, err := pool.Map(ctx, p, pid, ints(2), pool.Chunksize(1))
	if err != nil {
		return err
	}
	if err := c.Send(pids); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

func TestNoWorkerOutlivesTheParent(t *testing.T) {
	mine, theirs, err := pipe.Pipe()
	require.NoError(t, err)
	defer mine.Close()
	owner := process.New(poolOwner, theirs)
	require.NoError(t, owner.Start())
	theirs.Close()
	var pids []int
	require.NoError(t, mine.Recv(&pids))
	require.Len(t, pids, 2)
	for _, pid := range pids {
		require.True(t, alive(pid))
	}
	require.NoError(t, owner.Kill())
	var ee *process.ExitError
	require.ErrorAs(t, owner.Join(testbin.Context(t)), &ee)
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		assert.False(t, alive(pid), "worker %d outlived its parent", pid)
	}
}

var (
	initValue  string
	initialize = process.Register("test.init", func(ctx context.Context, a initArg) error {
		if a.Fail {
			return errors.New("no model here")
		}
		if a.FailIfExists != "" {
			if _, err := os.Stat(a.FailIfExists); err == nil {
				return errors.New("the model is gone")
			}
		}
		initValue = a.Value
		if a.Report != nil {
			return a.Report.Send(os.Getpid())
		}
		return nil
	})
	readInit = pool.Register("test.readInit", func(ctx context.Context, _ int) (string, error) { return initValue, nil })
)

type initArg struct {
	Value        string
	Fail         bool
	FailIfExists string
	Report       *pipe.Conn
}

func TestInitializer(t *testing.T) {
	mine, theirs, err := pipe.Pipe()
	require.NoError(t, err)
	defer mine.Close()
	p := newPool(t, pool.Workers(2), pool.MaxTasksPerChild(1),
		pool.Initializer(initialize, initArg{Value: "ready", Report: theirs}))
	// The handle in the initializer's argument reached every worker, also
	// the replacements started after the caller closed its copy.
	theirs.Close()
	res, err := pool.Map(testbin.Context(t), p, readInit, ints(4), pool.Chunksize(1))
	require.NoError(t, err)
	assert.Equal(t, []string{"ready", "ready", "ready", "ready"}, res)
	seen := map[int]bool{}
	for len(seen) < 4 {
		var pid int
		require.NoError(t, mine.Recv(&pid))
		seen[pid] = true
	}

	p2, err := pool.New(pool.Workers(2), pool.Initializer(initialize, initArg{Fail: true}))
	require.ErrorIs(t, err, pool.ErrBroken)
	assert.Contains(t, err.Error(), "no model here")
	assert.Nil(t, p2)
}

// A slot whose replacement workers cannot start is retried, then given up;
// with no worker left the pool is broken and says why, instead of hanging.
func TestBrokenPool(t *testing.T) {
	flag := t.TempDir() + "/flag"
	p, err := pool.New(pool.Workers(1), pool.Initializer(initialize, initArg{FailIfExists: flag}))
	require.NoError(t, err)
	defer func() { p.Terminate(); p.Join(testbin.Context(t)) }()
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	killer := pool.ApplyAsync(p, killSelf, 5)
	queued := pool.MapAsync(p, square, ints(10))
	_, err = killer.Get(testbin.Context(t))
	var wd *pool.WorkerDiedError
	require.ErrorAs(t, err, &wd)
	_, err = queued.Get(testbin.Context(t))
	require.ErrorIs(t, err, pool.ErrBroken)
	assert.Contains(t, err.Error(), "the model is gone")
	_, err = pool.Apply(testbin.Context(t), p, square, 1)
	require.ErrorIs(t, err, pool.ErrBroken)
	// A refused Imap is not a short one: every index yields the error.
	n := 0
	for _, err := range pool.Imap(testbin.Context(t), p, square, ints(100)) {
		require.ErrorIs(t, err, pool.ErrBroken)
		n++
	}
	assert.Equal(t, 100, n)
	require.NoError(t, p.Close())
	require.NoError(t, p.Join(testbin.Context(t)))
}

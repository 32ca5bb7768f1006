//go:build linux

package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tasks of the pool tests. They run in the worker processes of the hosts,
// which are children of this test binary's host processes: os.Getppid() in
// a task is the pid of the host that ran it.
var (
	square    = pool.Register("cluster.test.square", func(ctx context.Context, x int) (int, error) { return x * x, nil })
	whichHost = pool.Register("cluster.test.whichHost", func(ctx context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return os.Getppid(), nil
	})
	exitAt5 = pool.Register("cluster.test.exitAt5", func(ctx context.Context, x int) (int, error) {
		if x == 5 {
			os.Exit(3)
		}
		return x, nil
	})
	killHostAt3 = pool.Register("cluster.test.killHostAt3", func(ctx context.Context, x int) (int, error) {
		if x == 3 {
			syscall.Kill(os.Getppid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return x, nil
	})
	failOdd = pool.Register("cluster.test.failOdd", func(ctx context.Context, x int) (int, error) {
		if x%2 == 1 {
			return 0, fmt.Errorf("odd %d", x)
		}
		return x, nil
	})
	echoBytes = pool.Register("cluster.test.len", func(ctx context.Context, b []byte) (int, error) { return len(b), nil })
	// mark appends "start I" to File, sleeps Ms (or until its ctx ends, then
	// appends "cancelled I"), and returns I.
	mark = pool.Register("cluster.test.mark", func(ctx context.Context, a markArg) (int, error) {
		appendLine(a.File, fmt.Sprintf("start %d", a.I))
		select {
		case <-time.After(time.Duration(a.Ms) * time.Millisecond):
			return a.I, nil
		case <-ctx.Done():
			appendLine(a.File, fmt.Sprintf("cancelled %d", a.I))
			return 0, ctx.Err()
		}
	})
)

type markArg struct {
	File string
	I    int
	Ms   int
}

func appendLine(file, line string) {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		panic(err)
	}
	f.WriteString(line + "\n")
	f.Close()
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	for s := bufio.NewScanner(f); s.Scan(); {
		lines = append(lines, s.Text())
	}
	return lines
}

func marks(file string, n, ms int) []markArg {
	args := make([]markArg, n)
	for i := range args {
		args[i] = markArg{File: file, I: i, Ms: ms}
	}
	return args
}

// hostArg tells a host process what to serve.
type hostArg struct {
	URL     string
	Pool    string
	Workers int
	Build   string // another build id to claim, if set
	Timeout time.Duration
}

// poolHost is a "host" of the tests: a process serving a pool with its own
// workers until it is interrupted (SIGINT ends its ctx).
var poolHost = process.Register("cluster.test.poolHost", func(ctx context.Context, a hostArg) error {
	if a.Build != "" {
		cluster.SetBuildID(a.Build)
	}
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	opts := []pool.Option{pool.Workers(a.Workers)}
	if a.Timeout > 0 {
		opts = append(opts, pool.TaskTimeout(a.Timeout))
	}
	return cluster.ServePool(ctx, c, a.Pool, opts...)
})

// startHosts starts n host processes serving pool name. They are killed
// when the test ends, if they still run.
func startHosts(t testing.TB, url, name string, n, workers int) []*process.Process {
	t.Helper()
	var hosts []*process.Process
	for range n {
		h := process.New(poolHost, hostArg{URL: url, Pool: name, Workers: workers})
		require.NoError(t, h.Start())
		hosts = append(hosts, h)
		t.Cleanup(func() {
			h.Signal(syscall.SIGCONT)
			h.Kill()
			h.Join(context.Background())
		})
	}
	return hosts
}

// openPool opens pool name and waits until it sees n hosts.
func openPool(t testing.TB, c *cluster.Cluster, name string, n int, opts ...cluster.Option) *pool.Pool {
	t.Helper()
	ctx := testbin.Context(t)
	p, err := cluster.OpenPool(ctx, c, name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { p.Terminate() })
	for {
		st, _ := cluster.Stats(p)
		if st.Hosts >= n {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("saw %d hosts, want %d", st.Hosts, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func closePool(t testing.TB, p *pool.Pool) {
	t.Helper()
	require.NoError(t, p.Close())
	require.NoError(t, p.Join(testbin.Context(t)))
}

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestPoolAcrossHosts(t *testing.T) {
	s, c := setup(t)
	hosts := startHosts(t, s.URL(), "calls", 3, 2)
	p := openPool(t, c, "calls", 3)
	ctx := testbin.Context(t)
	st, ok := cluster.Stats(p)
	require.True(t, ok)
	assert.Equal(t, 6, st.Workers)

	got, err := pool.Map(ctx, p, square, ints(1000))
	require.NoError(t, err)
	for i, v := range got {
		require.Equal(t, i*i, v)
	}

	i := 0
	for v, err := range pool.Imap(ctx, p, square, ints(300), pool.Chunksize(7)) {
		require.NoError(t, err)
		require.Equal(t, i*i, v)
		i++
	}
	assert.Equal(t, 300, i)

	var seen []int
	for v, err := range pool.ImapUnordered(ctx, p, square, ints(200)) {
		require.NoError(t, err)
		seen = append(seen, v)
	}
	slices.Sort(seen)
	for i, v := range seen {
		require.Equal(t, i*i, v)
	}

	ars := make([]*pool.AsyncResult[int], 100)
	for i := range ars {
		ars[i] = pool.ApplyAsync(p, square, i)
	}
	for i, ar := range ars {
		v, err := ar.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
	v, err := pool.Apply(ctx, p, square, 12)
	require.NoError(t, err)
	assert.Equal(t, 144, v)

	// Every host takes part.
	ran, err := pool.Map(ctx, p, whichHost, slices.Repeat([]int{30}, 60), pool.Chunksize(1))
	require.NoError(t, err)
	for _, h := range hosts {
		assert.Contains(t, ran, h.Pid(), "host %d ran nothing", h.Pid())
	}

	// Callbacks, and task errors with their text.
	var okSum, errCount int
	_, err = pool.Map(ctx, p, failOdd, ints(10), pool.Chunksize(1),
		pool.OnResult(func(i, v int) { okSum += v }),
		pool.OnError(func(i int, err error) { errCount++ }))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 1, te.Index)
	assert.Equal(t, "odd 1", te.Message)
	for v, err := range pool.Imap(ctx, p, failOdd, []int{4, 5}) {
		if v == 0 {
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "pool: task 1: odd 5", err.Error())
		}
	}
	assert.Positive(t, errCount)

	st, _ = cluster.Stats(p)
	assert.Zero(t, st.Duplicates)
	assert.Zero(t, st.Lost)
	closePool(t, p)
}

func TestPoolHostOptionsApply(t *testing.T) {
	s, c := setup(t)
	h := process.New(poolHost, hostArg{URL: s.URL(), Pool: "opts", Workers: 1, Timeout: 300 * time.Millisecond})
	require.NoError(t, h.Start())
	t.Cleanup(func() { h.Kill(); h.Join(context.Background()) })
	p := openPool(t, c, "opts", 1)
	ctx := testbin.Context(t)
	_, err := pool.Apply(ctx, p, mark, markArg{File: filepath.Join(t.TempDir(), "m"), I: 1, Ms: 5000})
	require.ErrorIs(t, err, pool.ErrTimeout, "the host's TaskTimeout applies")
	v, err := pool.Apply(ctx, p, square, 3)
	require.NoError(t, err)
	assert.Equal(t, 9, v)
	closePool(t, p)
}

func TestPoolWorkerExitFailsOnlyItsTask(t *testing.T) {
	s, c := setup(t)
	startHosts(t, s.URL(), "exit", 2, 2)
	p := openPool(t, c, "exit", 2) // AckWait 30 s: the failure must not wait for it
	ctx := testbin.ContextFor(t, 10*time.Second)
	start := time.Now()
	i := 0
	for v, err := range pool.Imap(ctx, p, exitAt5, ints(12), pool.Chunksize(1)) {
		if i == 5 {
			var wd *pool.WorkerDiedError
			require.ErrorAs(t, err, &wd)
			assert.Equal(t, 3, wd.Code)
			assert.Equal(t, 5, wd.Index)
		} else {
			require.NoError(t, err, "task %d", i)
			assert.Equal(t, i, v)
		}
		i++
	}
	assert.Equal(t, 12, i)
	assert.Less(t, time.Since(start), 5*time.Second+testbin.Slack, "not after AckWait")
	// The host replaced its worker and goes on.
	got, err := pool.Map(ctx, p, square, ints(100))
	require.NoError(t, err)
	assert.Equal(t, 99*99, got[99])
	closePool(t, p)
}

func TestPoolHostKilledMidMap(t *testing.T) {
	s, c := setup(t)
	hosts := startHosts(t, s.URL(), "kill", 2, 2)
	p := openPool(t, c, "kill", 2, cluster.AckWait(time.Second))
	ctx := testbin.Context(t)
	killed := make(chan struct{})
	ran, err := pool.Map(ctx, p, whichHost, slices.Repeat([]int{50}, 80), pool.Chunksize(1),
		pool.Progress(func(done, total int) {
			if done >= 10 {
				select {
				case <-killed:
				default:
					hosts[0].Kill()
					close(killed)
				}
			}
		}))
	require.NoError(t, err)
	require.Len(t, ran, 80)
	var first, second int
	for _, pid := range ran {
		switch pid {
		case hosts[0].Pid():
			first++
		case hosts[1].Pid():
			second++
		default:
			t.Fatalf("result %d from an unknown host", pid)
		}
	}
	assert.Positive(t, first)
	assert.Greater(t, second, 40, "the survivor finished the killed host's tasks")
	closePool(t, p)
}

func TestPoolHostStoppedDuplicateDropped(t *testing.T) {
	s, c := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	a := startHosts(t, s.URL(), "stop", 1, 1)[0]
	p := openPool(t, c, "stop", 1, cluster.AckWait(time.Second))
	ctx := testbin.Context(t)
	ar := pool.ApplyAsync(p, mark, markArg{File: file, I: 7, Ms: 300})
	// Once host A runs the task, stop it; a second host gets the task after AckWait.
	waitFor(t, func() bool { return len(readLines(t, file)) == 1 })
	require.NoError(t, a.Signal(syscall.SIGSTOP))
	startHosts(t, s.URL(), "stop", 1, 1)
	start := time.Now()
	v, err := ar.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	assert.Greater(t, time.Since(start), 500*time.Millisecond, "redelivered only after AckWait")
	require.NoError(t, a.Signal(syscall.SIGCONT))
	// A's late result reaches the caller, which drops it and counts it.
	// (A may run the task once more: the server can redeliver it to a
	// fetch A had pending when it stopped. Each run's result is dropped.)
	// Every run but the first is a dropped duplicate.
	waitFor(t, func() bool {
		st, _ := cluster.Stats(p)
		return st.Duplicates >= 1 && st.Duplicates == int64(len(readLines(t, file))-1)
	})
	closePool(t, p)
}

func TestPoolLongTaskDeliveredOnce(t *testing.T) {
	s, c := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	startHosts(t, s.URL(), "long", 2, 1)
	p := openPool(t, c, "long", 2, cluster.AckWait(1500*time.Millisecond))
	ctx := testbin.Context(t)
	v, err := pool.Apply(ctx, p, mark, markArg{File: file, I: 1, Ms: 4500}) // 3 x AckWait
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	time.Sleep(1500 * time.Millisecond) // room for a redelivery to show
	assert.Equal(t, []string{"start 1"}, readLines(t, file))
	st, _ := cluster.Stats(p)
	assert.Zero(t, st.Duplicates)
	closePool(t, p)
}

func TestPoolPoisonTaskLost(t *testing.T) {
	s, c := setup(t)
	hosts := startHosts(t, s.URL(), "poison", 3, 1)
	p := openPool(t, c, "poison", 3, cluster.AckWait(time.Second), cluster.MaxDeliver(2))
	ctx := testbin.Context(t)
	// The task kills the host that runs it: each delivery is lost with its
	// host, and the second is the last.
	_, err := pool.Apply(ctx, p, killHostAt3, 3)
	require.ErrorIs(t, err, cluster.ErrLost)
	assert.Contains(t, err.Error(), "delivered 2 times")
	st, _ := cluster.Stats(p)
	assert.Equal(t, int64(1), st.Lost)
	dead := 0
	for _, h := range hosts {
		if !h.IsAlive() {
			dead++
		}
	}
	assert.Equal(t, 2, dead, "the poison task killed two hosts")
	// The pool goes on.
	got, err := pool.Map(ctx, p, square, ints(10))
	require.NoError(t, err)
	assert.Equal(t, 81, got[9])
	closePool(t, p)
}

func TestPoolNoWorkers(t *testing.T) {
	s, c := setup(t)
	ctx, cancel := context.WithTimeout(testbin.Context(t), 300*time.Millisecond)
	defer cancel()
	_, err := cluster.OpenPool(ctx, c, "nobody")
	require.ErrorIs(t, err, cluster.ErrNoWorkers)
	assert.Contains(t, err.Error(), "no host serves it at all")

	// A host of another build is seen, and never used.
	h := process.New(poolHost, hostArg{URL: s.URL(), Pool: "nobody", Workers: 1, Build: "0123456789abcdef"})
	require.NoError(t, h.Start())
	t.Cleanup(func() { h.Kill(); h.Join(context.Background()) })
	ctx, cancel = context.WithTimeout(testbin.Context(t), 2*time.Second)
	defer cancel()
	_, err = cluster.OpenPool(ctx, c, "nobody")
	require.ErrorIs(t, err, cluster.ErrNoWorkers)
	assert.Contains(t, err.Error(), "another build")
	assert.Contains(t, err.Error(), "0123456789abcdef")
}

func TestPoolCallerCancel(t *testing.T) {
	s, c := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	startHosts(t, s.URL(), "cancel", 1, 1)
	p := openPool(t, c, "cancel", 1)
	ctx, cancel := context.WithCancel(testbin.Context(t))
	go func() {
		waitFor(t, func() bool { return len(readLines(t, file)) >= 1 })
		cancel()
	}()
	_, err := pool.Map(ctx, p, mark, marks(file, 20, 3000), pool.Chunksize(1))
	require.ErrorIs(t, err, context.Canceled)
	// The running task sees its ctx cancelled; the rest never start.
	waitFor(t, func() bool {
		return slices.ContainsFunc(readLines(t, file), func(l string) bool { return strings.HasPrefix(l, "cancelled") })
	})
	time.Sleep(time.Second)
	lines := readLines(t, file)
	assert.LessOrEqual(t, len(lines), 4, "%q", lines)
	st, _ := cluster.Stats(p)
	assert.Zero(t, st.Duplicates, "results of a cancelled call are not duplicates")
	closePool(t, p)
}

func TestPoolTerminate(t *testing.T) {
	s, c := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	startHosts(t, s.URL(), "term", 1, 1)
	p := openPool(t, c, "term", 1)
	ar := pool.MapAsync(p, mark, marks(file, 10, 300), pool.Chunksize(1))
	waitFor(t, func() bool { return len(readLines(t, file)) >= 1 })
	require.NoError(t, p.Terminate())
	_, err := ar.Get(testbin.Context(t))
	require.ErrorIs(t, err, pool.ErrTerminated)
	require.NoError(t, p.Join(testbin.Context(t)))
	time.Sleep(time.Second)
	assert.LessOrEqual(t, len(readLines(t, file)), 4)
}

func TestPoolLargeArguments(t *testing.T) {
	s, c := setup(t)
	startHosts(t, s.URL(), "large", 1, 2)
	p := openPool(t, c, "large", 1)
	ctx := testbin.Context(t)
	// Two 600 KB arguments per chunk exceed the 1 MiB payload limit: the
	// chunk is split.
	args := make([][]byte, 4)
	for i := range args {
		args[i] = make([]byte, 600<<10+i)
	}
	got, err := pool.Map(ctx, p, echoBytes, args, pool.Chunksize(2))
	require.NoError(t, err)
	assert.Equal(t, []int{600 << 10, 600<<10 + 1, 600<<10 + 2, 600<<10 + 3}, got)
	// One argument over the limit fails alone, clearly.
	_, err = pool.Apply(ctx, p, echoBytes, make([]byte, 2<<20))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "payload limit")
	closePool(t, p)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx := testbin.Context(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestPoolHostStopsOnCtxEnd(t *testing.T) {
	s, c := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	a := startHosts(t, s.URL(), "leave", 1, 1)[0]
	p := openPool(t, c, "leave", 1) // AckWait 30 s: a handed-back task must not wait for it
	ctx := testbin.Context(t)
	ar := pool.MapAsync(p, mark, marks(file, 6, 300), pool.Chunksize(1))
	waitFor(t, func() bool { return len(readLines(t, file)) >= 1 })
	// A stops taking tasks, hands back those it took but had not started,
	// finishes the running one and returns; B does the rest.
	start := time.Now()
	require.NoError(t, a.Interrupt())
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second+testbin.Slack)
	defer cancel()
	require.NoError(t, a.Join(jctx), "ServePool returns nil when its ctx ends")
	b := startHosts(t, s.URL(), "leave", 1, 1)[0]
	got, err := ar.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, got)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Len(t, readLines(t, file), 6, "every task ran once")
	// After a burst of small tasks (its fetches partly used), B returns at
	// once too.
	_, err = pool.Map(ctx, p, square, ints(3000), pool.Chunksize(1))
	require.NoError(t, err)
	closePool(t, p)
	require.NoError(t, b.Interrupt())
	jctx, cancel = context.WithTimeout(ctx, time.Second+testbin.Slack)
	defer cancel()
	require.NoError(t, b.Join(jctx))
}

type callerArg struct {
	URL, Pool, File string
}

// poolCaller is a caller in a process of its own, so that a test can kill
// it: it maps long tasks and waits.
var poolCaller = process.Register("cluster.test.poolCaller", func(ctx context.Context, a callerArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := cluster.OpenPool(ctx, c, a.Pool)
	if err != nil {
		return err
	}
	_, err = pool.Map(ctx, p, mark, marks(a.File, 20, 5000), pool.Chunksize(1))
	return err
})

func TestPoolCallerDies(t *testing.T) {
	s, _ := setup(t)
	file := filepath.Join(t.TempDir(), "marks")
	startHosts(t, s.URL(), "orphan", 1, 1)
	caller := process.New(poolCaller, callerArg{URL: s.URL(), Pool: "orphan", File: file})
	require.NoError(t, caller.Start())
	t.Cleanup(func() { caller.Kill(); caller.Join(context.Background()) })
	waitFor(t, func() bool { return len(readLines(t, file)) >= 1 })
	require.NoError(t, caller.Kill())
	// The host notices within about two seconds: the running task sees its
	// ctx cancelled, and the queued ones are dropped, never run.
	start := time.Now()
	cancelled := func() bool {
		return slices.ContainsFunc(readLines(t, file), func(l string) bool { return strings.HasPrefix(l, "cancelled") })
	}
	waitFor(t, cancelled)
	assert.Less(t, time.Since(start), 4*time.Second+testbin.Slack)
	time.Sleep(2 * time.Second)
	lines := readLines(t, file)
	require.Len(t, lines, 2, "%q", lines)
	assert.Equal(t, strings.Replace(lines[0], "start", "cancelled", 1), lines[1])
}

func TestPoolBadInput(t *testing.T) {
	_, c := setup(t)
	ctx := testbin.Context(t)
	_, err := cluster.OpenPool(ctx, c, "no spaces")
	assert.ErrorContains(t, err, "pool name")
	_, err = cluster.OpenPool(ctx, c, "x", cluster.MaxSize(3))
	assert.ErrorIs(t, err, cluster.ErrInvalidOption)
	assert.ErrorContains(t, cluster.ServePool(ctx, c, "a.b"), "pool name")
	assert.ErrorIs(t, cluster.ServePool(ctx, c, "x", pool.Workers(0)), pool.ErrInvalidOption)
	local, err := pool.New(pool.Workers(1))
	require.NoError(t, err)
	defer local.Terminate()
	_, ok := cluster.Stats(local)
	assert.False(t, ok, "Stats of a local pool")
}

func TestPoolConnectionClosed(t *testing.T) {
	s, _ := setup(t)
	c, err := cluster.Connect(testbin.Context(t), s.URL())
	require.NoError(t, err)
	startHosts(t, s.URL(), "closed", 1, 1)
	p := openPool(t, c, "closed", 1)
	ctx := testbin.Context(t)
	ar := pool.ApplyAsync(p, mark, markArg{File: filepath.Join(t.TempDir(), "m"), I: 1, Ms: 10000})
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, c.Close())
	// The call fails instead of waiting for a result that cannot come.
	wctx, cancel := context.WithTimeout(ctx, time.Second+testbin.Slack)
	defer cancel()
	_, err = ar.Get(wctx)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	_, err = pool.Apply(ctx, p, square, 2)
	require.Error(t, err)
}

func TestServePoolConnectionClosed(t *testing.T) {
	s, _ := setup(t)
	c, err := cluster.Connect(testbin.Context(t), s.URL())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- cluster.ServePool(testbin.Context(t), c, "gone", pool.Workers(1)) }()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, nats.ErrConnectionClosed)
	case <-time.After(3*time.Second + testbin.Slack):
		t.Fatal("ServePool did not return after its connection closed")
	}
}

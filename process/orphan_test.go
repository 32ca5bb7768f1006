//go:build linux

package process_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/internal/testbin/earlystop"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var waitCtx = process.Register("test.waitCtx", func(ctx context.Context, _ struct{}) error {
	<-ctx.Done()
	return ctx.Err()
})

// orphanParent is what the test binary does when TestOrphanMessage runs it
// as a program (MPGO_TEST_ORPHAN set, after process.Init in TestMain): it
// starts a non-daemon and a daemon child, and once both run a second
// non-daemon child, prints their pids and exits without process.Shutdown,
// as a main that returns too early.
func orphanParent() {
	switch os.Getenv("MPGO_TEST_ORPHAN") {
	case "early":
		orphanEarly()
	case "killed":
		orphanKilledInStart()
	case "early-slow":
		orphanEarly(process.WithEnv("MPGO_TEST_INIT_DELAY=1m"))
	}
	var pids []string
	for _, opt := range []process.Option{process.WithName("orphan-worker"), process.WithDaemon()} {
		a, b, err := pipe.Pipe()
		if err != nil {
			panic(err)
		}
		p := process.New(block, b, opt)
		if err := p.Start(); err != nil {
			panic(err)
		}
		b.Close()
		var pid int
		if err := a.Recv(&pid); err != nil {
			panic(err)
		}
		pids = append(pids, strconv.Itoa(pid))
	}
	// One more, started just before the exit: it dies while it starts up.
	p := process.New(waitCtx, struct{}{}, process.WithName("orphan-late"))
	if err := p.Start(); err != nil {
		panic(err)
	}
	pids = append(pids, strconv.Itoa(p.Pid()))
	fmt.Println(strings.Join(pids, " "))
	os.Exit(0) // what returning from main does
}

// A parent that exits without joining a non-daemon child: the child says
// so on stderr (naming itself and what to call) and dies; a daemon child
// dies silently. Neither survives its parent.
func TestOrphanMessage(t *testing.T) {
	ctx := testbin.Context(t)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MPGO_TEST_ORPHAN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "the parent printed no pids")
	var pidfds []int
	for _, f := range strings.Fields(sc.Text()) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		fd, err := unix.PidfdOpen(pid, 0)
		require.NoError(t, err)
		defer unix.Close(fd)
		pidfds = append(pidfds, fd)
	}
	require.Len(t, pidfds, 3)
	for sc.Scan() {
	}
	// Wait returns once the children, which share the parent's stderr, have
	// closed it too: they are dead.
	require.NoError(t, cmd.Wait(), "stderr: %s", stderr.String())
	for _, fd := range pidfds {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int((5*time.Second + testbin.Slack).Milliseconds()))
		require.NoError(t, err)
		require.Equal(t, 1, n, "a child outlived its parent")
	}
	out := stderr.String()
	for _, name := range []string{"orphan-worker", "orphan-late"} {
		assert.Regexp(t, name+` \(pid \d+\) .*parent \(pid \d+\) ended without joining it.*process\.Shutdown`, out)
	}
	assert.Equal(t, 2, strings.Count(out, "multiprocessing:"), "one line each, and none from the daemon:\n%s", out)
	assert.NotContains(t, out, "Process-")
}

// orphanEarly is the parent of TestOrphanBeforeStartup: it starts a child
// that stops itself before this package initializes in it, and exits once
// the child is stopped. With opts (TestOrphanSlowStartup) the child is
// also slow: it sleeps after this package's init and before Init.
func orphanEarly(opts ...process.Option) {
	opts = append(opts, process.WithName("orphan-early"), process.WithEnv(earlystop.Env+"=1"))
	p := process.New(waitCtx, struct{}{}, opts...)
	if err := p.Start(); err != nil {
		panic(err)
	}
	waitStopped(p.Pid())
	fmt.Println(p.Pid())
	os.Exit(0)
}

// orphanKilledInStart is the parent of TestParentKilledDuringStart: it
// starts a child that stops itself before it reads its bootstrap, with an
// argument too large for the socket's buffer, so that Start waits; it
// prints the child's pid and kills itself in the middle of that Start.
func orphanKilledInStart() {
	go func() {
		p := process.New(takeBytes, make([]byte, 16<<20), process.WithName("orphan-killed"), process.WithEnv(earlystop.Env+"=1"))
		p.Start()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if kids := childPids(); len(kids) == 1 {
			waitStopped(kids[0])
			fmt.Println(kids[0])
			unix.Kill(os.Getpid(), unix.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
	panic("no child")
}

func waitStopped(pid int) {
	deadline := time.Now().Add(10 * time.Second)
	for !earlystop.Stopped(pid) {
		if time.Now().After(deadline) {
			panic("the child did not stop")
		}
		time.Sleep(time.Millisecond)
	}
}

// childPids lists this process's children, from every thread's list.
func childPids() []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// runOrphanParent runs this test binary as the parent in the given mode,
// and once it has printed its child's pid and is gone, continues the
// child (held stopped before its start-up) and waits for it to die. It
// returns what the parent and the child wrote on stderr.
func runOrphanParent(t *testing.T, mode string) string {
	ctx := testbin.Context(t)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MPGO_TEST_ORPHAN="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	parent, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	require.NoError(t, err)
	defer unix.Close(parent)
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "the parent printed no pid")
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	require.NoError(t, err)
	fd, err := unix.PidfdOpen(pid, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	// Continue the child once its parent is gone: it then starts up with
	// its parent already dead.
	poll := func(fd int, d time.Duration) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(d.Milliseconds()))
		require.NoError(t, err)
		return n == 1
	}
	require.True(t, poll(parent, 10*time.Second+testbin.Slack), "the parent did not exit")
	// A child killed with its parent has nothing to continue.
	if err := unix.PidfdSendSignal(fd, unix.SIGCONT, nil, 0); err != unix.ESRCH {
		require.NoError(t, err)
	}
	for sc.Scan() {
	}
	// Wait returns once the child, which shares the parent's stderr, has
	// closed it too: it is dead.
	cmd.Wait()
	require.True(t, poll(fd, 5*time.Second+testbin.Slack), "the child outlived its parent")
	return stderr.String()
}

// A parent that dies before its child has started up at all (the child is
// held before this package initializes in it, and continued once the
// parent is gone): the child still says so and dies. A parent-death
// signal armed before the child can handle it would kill it silently;
// waiting in Start for the child to arm its own would hold Start.
func TestOrphanBeforeStartup(t *testing.T) {
	out := runOrphanParent(t, "early")
	assert.Regexp(t, `orphan-early \(pid \d+\) .*parent \(pid \d+\) ended without joining it`, out)
	assert.Equal(t, 1, strings.Count(out, "multiprocessing:"), "one line:\n%s", out)
}

// A parent killed in the middle of Start (writing a large argument): the
// child, which cannot read its bootstrap whole, dies silently, as its
// parent was never told it started; it does not say it was started by
// hand.
func TestParentKilledDuringStart(t *testing.T) {
	out := runOrphanParent(t, "killed")
	assert.NotContains(t, out, "multiprocessing:")
}

// A child that is slow between this package's init function and Init (a
// package's init that takes long, here a sleep of a minute in TestMain),
// whose parent died before it started up: it does not live on until Init,
// but dies within its grace for reading the bootstrap (5 s), silently, as
// it never learnt its name.
func TestOrphanSlowStartup(t *testing.T) {
	start := time.Now()
	out := runOrphanParent(t, "early-slow")
	assert.Less(t, time.Since(start), 5*time.Second+testbin.Slack+2*time.Second)
	assert.NotContains(t, out, "multiprocessing:")
}

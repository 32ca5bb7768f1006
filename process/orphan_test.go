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

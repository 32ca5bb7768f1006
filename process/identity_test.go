//go:build linux

package process_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A worker carries the program's name where ps, top and pgrep look for it
// (comm, and argv[0] with the process's name after it), while its os.Args
// are the parent's, as they would be in Python's spawn.
func TestWorkerNameInPs(t *testing.T) {
	p := startBlocked(t, process.WithName("worker-x"))
	defer func() {
		p.Kill()
		p.Join(testbin.Context(t))
	}()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
	require.NoError(t, err)
	mine, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	assert.Equal(t, string(mine), string(comm), "comm (ps, top, pgrep)")
	assert.NotEqual(t, "exe\n", string(comm))
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid()))
	require.NoError(t, err)
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	assert.Equal(t, os.Args[0]+": worker-x", args[0], "argv[0] (ps -o args)")
	assert.Equal(t, os.Args[1:], args[1:])

	var ee *process.ExitError
	require.ErrorAs(t, run(t, process.New(argsAre, os.Args)), &ee)
	assert.Equal(t, "same args", ee.Message)
}

var argsAre = process.Register("test.argsAre", func(ctx context.Context, want []string) error {
	if !slices.Equal(os.Args, want) {
		return fmt.Errorf("os.Args = %q, want %q", os.Args, want)
	}
	return errors.New("same args")
})

// fdsOf lists the child's descriptors that are not close-on-exec (the ones
// it was given) and the paths of all of them.
var fdsOf = process.Register("test.fds", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	var lines []string
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		lines = append(lines, fmt.Sprintf("%d %v %s", fd, flags&unix.FD_CLOEXEC != 0, target))
	}
	return c.Send(lines)
})

// A descriptor the parent holds without close-on-exec (here opened with
// syscall.Open; one inherited from the shell is the same) does not reach
// the child: the child has 0-2 and the handles it was given.
func TestNoInheritedDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-for-children")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
	require.NoError(t, err)
	defer syscall.Close(fd)

	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(fdsOf, b)
	require.NoError(t, p.Start())
	b.Close()
	var lines []string
	require.NoError(t, a.Recv(&lines))
	require.NoError(t, p.Join(testbin.Context(t)))
	var inherited []string
	for _, l := range lines {
		f := strings.Fields(l)
		n, _ := strconv.Atoi(f[0])
		if n > 2 && f[1] == "false" {
			inherited = append(inherited, l)
		}
		assert.NotContains(t, l, path, "the parent's descriptor reached the child")
	}
	assert.Empty(t, inherited, "descriptors above 2 that are not close-on-exec: %q", lines)
}

// Register called after Init (inside main, say) cannot work: the child runs
// Init, and so its function, before main gets that far. Start says so.
// lateRuns makes each run's late name unique: a name registered twice
// panics, and go test -count=N runs the test N times in one process.
var lateRuns atomic.Int64

func TestRegisterAfterInit(t *testing.T) {
	name := fmt.Sprintf("test.late.%d", lateRuns.Add(1))
	late := process.Register(name, func(ctx context.Context, _ struct{}) error { return nil })
	p := process.New(late, struct{}{})
	err := p.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after process.Init")
	assert.Contains(t, err.Error(), "package level")
	assert.Equal(t, 0, p.Pid())
}

// A program (here a test binary whose TestMain does not call process.Init)
// gets the hint from Start itself.
func TestStartWithoutInit(t *testing.T) {
	cmd := exec.CommandContext(testbin.Context(t), "/proc/self/exe", "-test.run=^TestNoInitHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MPGO_TEST_NO_INIT=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "Start: process: process.Init() was not called")
}

func TestNoInitHelper(t *testing.T) {
	if os.Getenv("MPGO_TEST_NO_INIT") == "" {
		t.Skip("helper for TestStartWithoutInit")
	}
	err := process.New(noop, struct{}{}).Start()
	require.ErrorIs(t, err, process.ErrNoInit)
	fmt.Println("Start:", err)
}

// An ExitError printed as a value reads as its message, without the zero
// signal of a normal exit.
func TestExitErrorText(t *testing.T) {
	var ee *process.ExitError
	require.ErrorAs(t, run(t, process.New(fail, "it failed")), &ee)
	for _, s := range []string{ee.Error(), fmt.Sprint(*ee), fmt.Sprintf("%+v", *ee)} {
		assert.NotContains(t, s, "signal")
		assert.Contains(t, s, "exited with code 1: it failed")
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v", ee)
	assert.Equal(t, ee.Error(), buf.String())
}

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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("MPGO_BENCH_EXIT") != "" {
		os.Exit(0) // BenchmarkExecSelf's child: the cost of a bare re-exec
	}
	if d, err := time.ParseDuration(os.Getenv("MPGO_TEST_INIT_DELAY")); err == nil {
		time.Sleep(d) // a child slow to read its bootstrap (TestMethodsDuringStart)
	}
	if os.Getenv("MPGO_TEST_NO_INIT") == "" {
		process.Init()
	}
	if os.Getenv("MPGO_TEST_ORPHAN") != "" {
		orphanParent()
	}
	if os.Getenv("MPGO_TEST_SIGINT_IGNORED") != "" {
		sigintIgnoredParent()
	}
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

var (
	noop    = process.Register("test.noop", func(ctx context.Context, _ struct{}) error { return nil })
	fail    = process.Register("test.fail", func(ctx context.Context, msg string) error { return errors.New(msg) })
	boom    = process.Register("test.panic", func(ctx context.Context, msg string) error { panic(msg) })
	exit    = process.Register("test.exit", func(ctx context.Context, code int) error { os.Exit(code); return nil })
	suicide = process.Register("test.suicide", func(ctx context.Context, _ struct{}) error {
		return syscall.Kill(os.Getpid(), syscall.SIGKILL)
	})
	// block tells the parent it runs, then waits for its ctx to end.
	block = process.Register("test.block", func(ctx context.Context, ready *pipe.Conn) error {
		if err := ready.Send(os.Getpid()); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	env = process.Register("test.env", func(ctx context.Context, kv [2]string) error {
		if got := os.Getenv(kv[0]); got != kv[1] {
			return fmt.Errorf("%s=%q, want %q", kv[0], got, kv[1])
		}
		if _, ok := os.LookupEnv(process.EnvBootstrap); ok {
			return errors.New("bootstrap variable leaked into the child's environment")
		}
		return nil
	})
	printer = process.Register("test.print", func(ctx context.Context, n int) error {
		for i := range n {
			fmt.Printf("line %d\n", i)
			fmt.Fprintf(os.Stderr, "err %d\n", i)
		}
		return errors.New("done printing")
	})
	whoami = process.Register("test.whoami", func(ctx context.Context, parent int) error {
		info := process.Current()
		if !info.IsWorker || info.ParentPid != parent || info.Pid != os.Getpid() {
			return fmt.Errorf("Current() = %+v, parent %d", info, parent)
		}
		return errors.New(info.Name)
	})
	// nested starts a child of its own and reports its name.
	nested = process.Register("test.nested", func(ctx context.Context, _ struct{}) error {
		p := process.New(whoami, os.Getpid())
		if err := p.Start(); err != nil {
			return err
		}
		var ee *process.ExitError
		if err := p.Join(ctx); !errors.As(err, &ee) {
			return fmt.Errorf("grandchild: %v", err)
		}
		return errors.New(ee.Message)
	})
	daemonStarts = process.Register("test.daemonStarts", func(ctx context.Context, _ struct{}) error {
		return process.New(noop, struct{}{}).Start()
	})
	// middle starts a grandchild that blocks and reports its pid, with
	// stderr on the given file, then blocks itself until it is killed.
	middle = process.Register("test.middle", func(ctx context.Context, a middleArg) error {
		// The grandchild inherits descriptor 2: the file itself, not the
		// pipe whose copy ends with this process.
		if err := unix.Dup3(int(a.Stderr.Fd()), 2, 0); err != nil {
			return err
		}
		p := process.New(block, a.Ready)
		if err := p.Start(); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
)

type middleArg struct {
	Ready  *pipe.Conn
	Stderr *os.File
}

func run(t *testing.T, p *process.Process) error {
	t.Helper()
	require.NoError(t, p.Start())
	return p.Join(testbin.Context(t))
}

func TestExitCodes(t *testing.T) {
	t.Run("nil", func(t *testing.T) {
		p := process.New(noop, struct{}{})
		require.NoError(t, run(t, p))
		code, exited := p.ExitCode()
		assert.True(t, exited)
		assert.Equal(t, 0, code)
		assert.False(t, p.IsAlive())
	})
	t.Run("error", func(t *testing.T) {
		p := process.New(fail, "it failed")
		var ee *process.ExitError
		require.ErrorAs(t, run(t, p), &ee)
		assert.Equal(t, 1, ee.Code)
		assert.Equal(t, 1, ee.ExitCode())
		assert.Equal(t, syscall.Signal(0), ee.Signal)
		assert.Equal(t, "it failed", ee.Message)
		assert.Equal(t, p.Pid(), ee.Pid)
		assert.Equal(t, p.Name(), ee.Name)
		assert.Contains(t, ee.Error(), "exited with code 1: it failed")
	})
	t.Run("panic", func(t *testing.T) {
		var ee *process.ExitError
		require.ErrorAs(t, run(t, process.New(boom, "kaboom")), &ee)
		assert.Equal(t, 1, ee.Code)
		assert.Contains(t, ee.Message, "panic: kaboom")
		// The stack names the function that panicked.
		assert.Contains(t, ee.Message, "process/process_test.go:")
		assert.NotContains(t, ee.Message, "runtime/debug.Stack", "the runtime's own frames are trimmed")
	})
	t.Run("os.Exit", func(t *testing.T) {
		var ee *process.ExitError
		require.ErrorAs(t, run(t, process.New(exit, 3)), &ee)
		assert.Equal(t, 3, ee.Code)
		assert.Empty(t, ee.Message)
	})
	t.Run("SIGKILL", func(t *testing.T) {
		p := process.New(suicide, struct{}{})
		var ee *process.ExitError
		require.ErrorAs(t, run(t, p), &ee)
		assert.Equal(t, -9, ee.Code)
		assert.Equal(t, syscall.SIGKILL, ee.Signal)
		code, _ := p.ExitCode()
		assert.Equal(t, -9, code)
	})
}

// startBlocked starts a child of block and waits until it runs.
func startBlocked(t *testing.T, opts ...process.Option) *process.Process {
	t.Helper()
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(block, b, opts...)
	require.NoError(t, p.Start())
	b.Close()
	var pid int
	require.NoError(t, a.Recv(&pid))
	require.Equal(t, p.Pid(), pid)
	require.True(t, p.IsAlive())
	return p
}

func TestSignals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		send   func(*process.Process) error
		code   int
		signal syscall.Signal
		msg    string
	}{
		{"Terminate", (*process.Process).Terminate, -15, syscall.SIGTERM, ""},
		{"Kill", (*process.Process).Kill, -9, syscall.SIGKILL, ""},
		// Interrupt cancels the child's ctx; block returns ctx.Err().
		{"Interrupt", (*process.Process).Interrupt, 1, 0, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startBlocked(t)
			require.NoError(t, tc.send(p))
			var ee *process.ExitError
			require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
			assert.Equal(t, tc.code, ee.Code)
			assert.Equal(t, tc.signal, ee.Signal)
			assert.Equal(t, tc.msg, ee.Message)
			// Signalling an exited process is a no-op.
			assert.NoError(t, tc.send(p))
		})
	}
}

// Interrupt before the child's function has started ends the child as
// SIGINT does without a handler, even once the child handles SIGINT (it
// does from early in its start-up, to cancel the function's ctx later).
// The child here sleeps between its start-up and Init.
func TestInterruptBeforeFunction(t *testing.T) {
	p := process.New(noop, struct{}{}, process.WithEnv("MPGO_TEST_INIT_DELAY=1m"))
	require.NoError(t, p.Start())
	time.Sleep(200 * time.Millisecond) // past the start-up, in the sleep
	require.NoError(t, p.Interrupt())
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.ContextFor(t, 5*time.Second+testbin.Slack)), &ee)
	assert.Equal(t, -2, ee.Code)
	assert.Equal(t, syscall.SIGINT, ee.Signal)
}

// sigintIgnoredParent is what the test binary does when
// TestInterruptIgnoredAtStart runs it with SIGINT ignored: it interrupts a
// child before its function runs (ignored, as SIGINT is in the child), then
// once it runs (its ctx ends), and prints what Join returned.
func sigintIgnoredParent() {
	a, b, err := pipe.Pipe()
	if err != nil {
		panic(err)
	}
	p := process.New(block, b, process.WithEnv("MPGO_TEST_INIT_DELAY=500ms"))
	if err := p.Start(); err != nil {
		panic(err)
	}
	b.Close()
	time.Sleep(200 * time.Millisecond) // past the start-up, in the sleep
	if err := p.Interrupt(); err != nil {
		panic(err)
	}
	var pid int
	if err := a.Recv(&pid); err != nil {
		fmt.Println("the child did not reach its function:", err)
		os.Exit(0)
	}
	if err := p.Interrupt(); err != nil {
		panic(err)
	}
	fmt.Println(p.Join(context.Background()))
	os.Exit(0)
}

// A child whose SIGINT is ignored from the start (inherited, as under
// nohup or in a shell's background job) ignores an Interrupt before its
// function runs, as it would without a handler; once the function runs,
// Interrupt cancels its ctx.
func TestInterruptIgnoredAtStart(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.CommandContext(testbin.Context(t), "sh", "-c", `trap "" INT; exec "$0" -test.run='^$'`, exe)
	cmd.Env = append(os.Environ(), "MPGO_TEST_SIGINT_IGNORED=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "exited with code 1: context canceled")
}

func TestJoinContext(t *testing.T) {
	p := startBlocked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Join(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.True(t, p.IsAlive(), "the child keeps running after Join's ctx ends")
	_, exited := p.ExitCode()
	assert.False(t, exited)
	require.NoError(t, p.Kill())
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	// Join is idempotent.
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	assert.Equal(t, -9, ee.Code)
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Join")
	}
}

func TestLifecycleErrors(t *testing.T) {
	p := process.New(noop, struct{}{})
	assert.Equal(t, 0, p.Pid())
	assert.False(t, p.IsAlive())
	assert.ErrorIs(t, p.Join(testbin.Context(t)), process.ErrNotStarted)
	assert.ErrorIs(t, p.Terminate(), process.ErrNotStarted)
	_, exited := p.ExitCode()
	assert.False(t, exited)
	require.NoError(t, p.Start())
	assert.ErrorIs(t, p.Start(), process.ErrStarted)
	require.NoError(t, p.Join(testbin.Context(t)))
	assert.ErrorIs(t, p.Start(), process.ErrStarted)
}

var takeChan = process.Register("test.chan", func(ctx context.Context, c chan int) error { return nil })

func TestUnencodableArgument(t *testing.T) {
	p := process.New(takeChan, make(chan int))
	err := p.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chan")
	assert.Equal(t, 0, p.Pid(), "no child is started")
}

func TestRegisterPanics(t *testing.T) {
	assert.Panics(t, func() { process.Register("test.noop", func(context.Context, int) error { return nil }) })
	assert.Panics(t, func() { process.Register("", func(context.Context, int) error { return nil }) })
	assert.Panics(t, func() { process.Register("a b", func(context.Context, int) error { return nil }) })
}

func TestNamesAndCurrent(t *testing.T) {
	assert.Equal(t, "MainProcess", process.Current().Name)
	assert.False(t, process.Current().IsWorker)

	p := process.New(whoami, os.Getpid(), process.WithName("worker-x"))
	var ee *process.ExitError
	require.ErrorAs(t, run(t, p), &ee)
	assert.Equal(t, "worker-x", ee.Message, "the child sees its own name")

	q := process.New(nested, struct{}{})
	require.True(t, strings.HasPrefix(q.Name(), "Process-"))
	require.ErrorAs(t, run(t, q), &ee)
	// A grandchild is named after its parent's identity, as in Python.
	assert.Regexp(t, `^`+q.Name()+`:\d+$`, ee.Message)
}

func TestEnv(t *testing.T) {
	p := process.New(env, [2]string{"MPGO_TEST_VAR", "forty two"}, process.WithEnv("MPGO_TEST_VAR=forty two"))
	require.NoError(t, run(t, p))
}

func TestOutputCapture(t *testing.T) {
	var out, errb bytes.Buffer
	p := process.New(printer, 1000, process.WithStdout(&out), process.WithStderr(&errb))
	var ee *process.ExitError
	require.ErrorAs(t, run(t, p), &ee)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1000, "all output is in the writer when Join returns")
	assert.Equal(t, "line 999", lines[999])
	assert.True(t, strings.HasSuffix(errb.String(), "err 999\n"))
	assert.LessOrEqual(t, len(ee.Stderr), 4096)
	assert.True(t, bytes.HasSuffix(ee.Stderr, []byte("err 999\n")), "the stderr tail is in the ExitError")
}

func TestOutputToFile(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/out")
	require.NoError(t, err)
	defer f.Close()
	p := process.New(printer, 3, process.WithStdout(f))
	require.Error(t, run(t, p))
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, "line 0\nline 1\nline 2\n", string(b))
}

func TestDaemon(t *testing.T) {
	p := process.New(daemonStarts, struct{}{}, process.WithDaemon())
	assert.True(t, p.Daemon())
	var ee *process.ExitError
	require.ErrorAs(t, run(t, p), &ee)
	assert.Equal(t, process.ErrDaemonChildren.Error(), ee.Message)
}

func TestShutdown(t *testing.T) {
	d := startBlocked(t, process.WithDaemon())
	n := process.New(noop, struct{}{})
	require.NoError(t, n.Start())
	assert.Contains(t, process.ActiveChildren(), d)
	require.NoError(t, process.Shutdown(testbin.Context(t)))
	code, exited := d.ExitCode()
	assert.True(t, exited)
	assert.Equal(t, -15, code, "Shutdown terminates daemons")
	code, exited = n.ExitCode()
	assert.True(t, exited)
	assert.Equal(t, 0, code, "and joins the others")
	assert.NotContains(t, process.ActiveChildren(), d)
	assert.NotContains(t, process.ActiveChildren(), n)

	// Shutdown returns the ctx error when a child outlives it.
	b := startBlocked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, process.Shutdown(ctx), context.DeadlineExceeded)
	require.NoError(t, b.Kill())
	require.Error(t, b.Join(testbin.Context(t)))
}

// TestNoOrphans kills a child with SIGKILL and checks that the grandchild
// it started dies too, within a second.
func TestNoOrphans(t *testing.T) {
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	// A file the grandchild writes to directly: it writes after its
	// parent, whose output copy ends with it, is dead.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	require.NoError(t, err)
	defer stderr.Close()
	p := process.New(middle, middleArg{Ready: b, Stderr: stderr})
	require.NoError(t, p.Start())
	b.Close()
	var gpid int
	require.NoError(t, a.Recv(&gpid))
	pidfd, err := unix.PidfdOpen(gpid, 0)
	require.NoError(t, err)
	defer unix.Close(pidfd)

	require.NoError(t, p.Kill())
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	assert.Equal(t, -9, ee.Code)
	// A pidfd turns readable when its process exits (even while a zombie).
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 1000)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "grandchild %d still alive 1 s after its parent was SIGKILLed", gpid)
	// It said why, on the stderr it shares with its parent.
	out, err := os.ReadFile(stderr.Name())
	require.NoError(t, err)
	assert.Regexp(t, `process `+p.Name()+`:\d+ \(pid `+strconv.Itoa(gpid)+`\) killed: its parent \(pid \d+\) ended without joining it`, string(out))
}

func TestManyConcurrent(t *testing.T) {
	const n = 100
	ps := make([]*process.Process, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ps[i] = process.New(noop, struct{}{})
			if err := ps[i].Start(); err != nil {
				errs <- err
				return
			}
			errs <- ps[i].Join(testbin.Context(t))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	pids := map[int]bool{}
	for _, p := range ps {
		pids[p.Pid()] = true
	}
	assert.Len(t, pids, n)
	assert.Empty(t, process.ActiveChildren())
}

func TestNoFDLeak(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	// Warm up lazily opened descriptors (/dev/null).
	require.NoError(t, run(t, process.New(noop, struct{}{})))
	before := count()
	for range 5 {
		require.NoError(t, run(t, process.New(noop, struct{}{})))
		var out bytes.Buffer
		require.Error(t, run(t, process.New(printer, 1, process.WithStdout(&out), process.WithStderr(&out))))
		startBlocked(t).Kill()
	}
	require.NoError(t, process.Shutdown(testbin.Context(t)))
	assert.Equal(t, before, count())
}

func TestNoInit(t *testing.T) {
	t.Setenv(process.EnvBootstrap, "3")
	p := process.New(noop, struct{}{})
	assert.ErrorIs(t, p.Start(), process.ErrNoInit)
}

// A worker binary started by hand (the variable set, no bootstrap) says so.
func TestStartedByHand(t *testing.T) {
	cmd := exec.CommandContext(testbin.Context(t), "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), process.EnvBootstrap+"=3")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "not by hand")
}

var authkeyIs = process.Register("test.authkey", func(ctx context.Context, want []byte) error {
	if !bytes.Equal(process.AuthKey(), want) {
		return errors.New("authkey differs")
	}
	return nil
})

func TestAuthKeyInherited(t *testing.T) {
	f := authkeyIs
	require.Len(t, process.AuthKey(), 32)
	require.NoError(t, run(t, process.New(f, process.AuthKey())))
}

// Join and Shutdown with a ctx that has already ended report an exited
// child's result, every time: select alone picks at random between two
// ready cases.
func TestJoinEndedCtxAfterExit(t *testing.T) {
	p := process.New(fail, "done")
	require.NoError(t, p.Start())
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		require.ErrorAs(t, p.Join(ctx), &ee)
		require.NoError(t, process.Shutdown(ctx))
	}
}

// A child started from a thread that then exits (a goroutine that returns
// locked to its thread retires it) lives on: a child ends with its parent
// process, not with the thread that forked it (as prctl's parent-death
// signal would have it, go.dev/issue/27505).
func TestStartFromRetiredThread(t *testing.T) {
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	started := make(chan *process.Process)
	var startOnOwnThread func()
	startOnOwnThread = func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		if syscall.Gettid() == os.Getpid() {
			// The main thread never exits: start from another one, which
			// cannot be this one while we hold it.
			done := make(chan struct{})
			go func() {
				defer close(done)
				startOnOwnThread()
			}()
			<-done
			runtime.UnlockOSThread()
			return
		}
		p := process.New(block, b)
		if err := p.Start(); err != nil {
			t.Error(err)
		}
		b.Close()
		started <- p
	}
	go startOnOwnThread()
	p := <-started
	var pid int
	require.NoError(t, a.Recv(&pid))
	time.Sleep(100 * time.Millisecond) // the thread is gone by now
	require.True(t, p.IsAlive())
	require.NoError(t, p.Interrupt())
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	assert.Equal(t, 1, ee.Code, "it ran until interrupted")
	assert.Equal(t, "context canceled", ee.Message)
}

// Starts and joins from several goroutines at once.
func TestStartChurn(t *testing.T) {
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 20 {
				p := process.New(noop, struct{}{})
				if err := p.Start(); err != nil {
					t.Error(err)
					return
				}
				if err := p.Join(testbin.Context(t)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

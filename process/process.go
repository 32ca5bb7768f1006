//go:build linux

package process

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mpgo/multiprocessing/internal/exithook"
	"github.com/mpgo/multiprocessing/internal/wire"
)

var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("process: already started")
	// ErrNotStarted is returned by Join and the signal methods before Start.
	ErrNotStarted = errors.New("process: not started")
	// ErrDaemonChildren is returned by Start in a daemon process: daemons
	// are terminated at their parent's exit and may not leave children.
	ErrDaemonChildren = errors.New("process: daemonic processes are not allowed to have children")
	// ErrNoInit is returned by Start when process.Init was not called
	// first in main (or in TestMain): a worker, which is the same binary,
	// would not run its function but the program from the top again.
	ErrNoInit = errors.New("process: process.Init() was not called: call it as the first statement of main (and of TestMain in tests)")
)

// Option configures a Process.
type Option interface{ apply(*options) }

type options struct {
	name   string
	daemon bool
	stdout io.Writer
	stderr io.Writer
	env    []string
}

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

// WithName sets the process name (default "Process-N").
func WithName(name string) Option { return optFunc(func(o *options) { o.name = name }) }

// WithDaemon marks the process as a daemon: Shutdown terminates it instead
// of joining it, and it may not start children of its own.
func WithDaemon() Option { return optFunc(func(o *options) { o.daemon = true }) }

// WithStdout sends the child's standard output to w (default: the parent's).
// Everything the child wrote is in w by the time Join returns. If w returns
// an error it is not written to again; the child is not disturbed. Output
// that a grandchild which inherited the descriptor writes after the child
// has exited is dropped: Join does not wait for such a process.
func WithStdout(w io.Writer) Option { return optFunc(func(o *options) { o.stdout = w }) }

// WithStderr sends the child's standard error to w (default: the parent's).
// The last 4 KiB also land in ExitError.Stderr.
func WithStderr(w io.Writer) Option { return optFunc(func(o *options) { o.stderr = w }) }

// WithEnv adds "KEY=VALUE" entries to the environment the child inherits;
// an entry replaces an inherited variable of the same name. Start rejects
// an entry that is not KEY=VALUE or holds a NUL byte.
func WithEnv(kv ...string) Option {
	return optFunc(func(o *options) { o.env = append(o.env, kv...) })
}

// Process is a child process running a registered function, the analogue of
// Python's multiprocessing.Process. Its methods are safe for concurrent use.
type Process struct {
	opts   options
	encode func() ([]byte, *wire.Files, error)
	fn     string
	ident  string

	mu       sync.Mutex
	starting bool // Start is at work, without holding mu
	started  bool
	pid      int
	os       *osProc // nil before Start

	done    chan struct{}
	code    int
	signal  syscall.Signal
	message string
	codes   []string // sentinel errors the child's report matched (exithook)
	stderr  *tailBuffer
}

var counter atomic.Int64

// New prepares a process that will run f(ctx, arg). The argument is encoded
// (as msgpack, handles included) when Start is called.
func New[A any](f Func[A], arg A, opts ...Option) *Process {
	p := &Process{fn: f.name, done: make(chan struct{})}
	for _, o := range opts {
		o.apply(&p.opts)
	}
	n := counter.Add(1)
	p.ident = strconv.FormatInt(n, 10)
	if child.active && child.identity != "" {
		p.ident = child.identity + ":" + p.ident
	}
	if p.opts.name == "" {
		p.opts.name = "Process-" + p.ident
	}
	p.encode = func() ([]byte, *wire.Files, error) { return wire.Marshal(arg) }
	return p
}

// Name returns the process name.
func (p *Process) Name() string { return p.opts.name }

// Pid returns the child's process id, 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Daemon reports whether the process was created WithDaemon.
func (p *Process) Daemon() bool { return p.opts.daemon }

// Start starts the child. It may be called once; the argument's handles can
// be closed by the caller as soon as it returns. It returns once the child
// is executing (it does not wait for the child's start-up: a child says why
// it dies should this process end without joining it whenever that
// happens) and has taken a large argument. While it runs, the other methods
// behave as before Start.
func (p *Process) Start() error {
	p.mu.Lock()
	if p.started || p.starting {
		p.mu.Unlock()
		return ErrStarted
	}
	p.starting = true
	p.mu.Unlock()
	proc, err := p.start()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting = false
	if err != nil {
		return err
	}
	p.started = true
	p.os = proc
	p.pid = proc.pid
	p.stderr = proc.stderrTail
	addActive(p)
	go p.wait()
	return nil
}

// start does Start's work, without p.mu: a large argument takes a while to
// encode and to write, and Join (with its ctx), Pid or IsAlive must not
// wait for that.
func (p *Process) start() (*osProc, error) {
	if _, ok := os.LookupEnv(EnvBootstrap); ok {
		return nil, fmt.Errorf("%w; this is a worker process, which would start workers of its own", ErrNoInit)
	}
	if !initialized.Load() {
		return nil, ErrNoInit
	}
	if child.active && child.daemon {
		return nil, ErrDaemonChildren
	}
	e, ok := lookup(p.fn)
	if !ok {
		return nil, fmt.Errorf("process: function %q is not registered", p.fn)
	}
	if e.late {
		return nil, fmt.Errorf("process: start %s: function %q was registered after process.Init, so the worker, which runs Init first, does not have it: register it at package level (var f = process.Register(...)) or in an init function", p.opts.name, p.fn)
	}
	for _, kv := range p.opts.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("process: start %s: invalid environment entry %q: want KEY=VALUE without NUL bytes", p.opts.name, kv)
		}
	}
	arg, files, err := p.encode()
	if err != nil {
		return nil, fmt.Errorf("process: %s: %w", p.opts.name, err)
	}
	defer files.Close()
	if len(arg) > maxArgSize {
		return nil, fmt.Errorf("process: start %s: the argument is %d bytes encoded, over the limit of %d bytes", p.opts.name, len(arg), maxArgSize)
	}
	b := bootstrap{
		Version:   protocolVersion,
		ExeID:     selfID(),
		Func:      p.fn,
		NFiles:    files.Len(),
		ParentPid: os.Getpid(),
		Name:      p.opts.name,
		Identity:  p.ident,
		Daemon:    p.opts.daemon,
		AuthKey:   AuthKey(),
		Argv0:     argv0(),
	}
	proc, err := spawn(&b, arg, files.FDs(), &p.opts)
	if err != nil {
		return nil, fmt.Errorf("process: start %s: %w", p.opts.name, err)
	}
	return proc, nil
}

// wait reaps the child, collects its report and closes done.
func (p *Process) wait() {
	st := p.os.wait()
	p.os.finish()
	msg, codes, started := p.os.reports()
	p.mu.Lock()
	p.code = st.code
	p.signal = st.signal
	p.message = msg
	p.codes = codes
	// A worker that exits on its own before it reached its function, and
	// did not say why, never ran Init: the program starts its workers
	// conditionally, or exits before Init.
	if !started && st.signal == 0 && msg == "" {
		if p.code == 0 {
			p.code = 1
		}
		p.message = "the worker exited before running its function: call process.Init() as the first statement of main (and of TestMain)"
	}
	p.mu.Unlock()
	removeActive(p)
	close(p.done)
}

// Done returns a channel closed when the process has exited and its output
// has been collected (Python's sentinel). Before Start it never closes.
func (p *Process) Done() <-chan struct{} { return p.done }

// Join waits for the process to exit. It returns nil after exit code 0, an
// *ExitError otherwise, and ctx's error if ctx ends first (the child keeps
// running). Join is idempotent and may be called from many goroutines.
func (p *Process) Join(ctx context.Context) error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	if err := waitDone(ctx, p.done); err != nil {
		return fmt.Errorf("process: join %s: %w", p.opts.name, err)
	}
	return p.exitError()
}

// waitDone waits for done or ctx, preferring done: a select on two ready
// channels picks at random, and a child that has exited must be reported as
// such to a caller whose ctx has ended too (a Join used as a poll).
func waitDone(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.code == 0 {
		return nil
	}
	e := &ExitError{Name: p.opts.name, Pid: p.pid, Code: p.code, Signal: p.signal, Message: p.message,
		sentinels: exithook.Sentinels(p.codes)}
	if p.stderr != nil {
		e.Stderr = p.stderr.Bytes()
	}
	return e
}

// IsAlive reports whether the process has started and not yet exited.
func (p *Process) IsAlive() bool {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitCode returns the exit code and whether the process has exited: 0 on
// success, 1 when the function failed or panicked, the os.Exit code, or -N
// when killed by signal N (as Python's exitcode).
func (p *Process) ExitCode() (code int, exited bool) {
	select {
	case <-p.done:
	default:
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code, true
}

// Terminate sends SIGTERM. The child does not catch it: it dies with exit
// code -15, as Python's terminate. A process that has exited is left alone.
func (p *Process) Terminate() error { return p.Signal(syscall.SIGTERM) }

// Interrupt sends SIGINT, which cancels the ctx the child's function got, so
// that it can clean up and return (exit code 1 if it returns the ctx error).
func (p *Process) Interrupt() error { return p.Signal(syscall.SIGINT) }

// Kill sends SIGKILL: exit code -9.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Signal sends sig to the child. It uses a pidfd where the kernel has them,
// so a signal never reaches another process that reused the pid. Signalling
// an exited process is a no-op.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	proc := p.os
	p.mu.Unlock()
	if proc == nil {
		return ErrNotStarted
	}
	return proc.signal(sig)
}

// ExitError reports a child that did not exit with code 0.
type ExitError struct {
	Name    string
	Pid     int
	Code    int            // as ExitCode: the exit status, or -N for signal N
	Signal  syscall.Signal // 0 unless killed by a signal
	Message string         // the function's error text, or the panic value and stack
	Stderr  []byte         // tail of the child's stderr when captured with WithStderr

	// The sentinel errors (such as queue.ErrNotFlushed) that the child's
	// error matched: the child sends their codes with its text.
	sentinels []error
}

// Unwrap returns the sentinel errors the child's error matched, so that
// errors.Is(err, queue.ErrNotFlushed) works on a child's failure as it
// would in the child. Only sentinels their package registered travel.
func (e ExitError) Unwrap() []error { return e.sentinels }

// ExitCode returns Code.
func (e ExitError) ExitCode() int { return e.Code }

// Error says how the process ended. Its receiver is a value so that an
// ExitError printed as a value (fmt's %v of *ee) reads the same.
func (e ExitError) Error() string {
	s := fmt.Sprintf("process %s (pid %d) ", e.Name, e.Pid)
	if e.Signal != 0 {
		s += fmt.Sprintf("killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		s += fmt.Sprintf("exited with code %d", e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Info describes the current process.
type Info struct {
	Name      string
	Pid       int
	ParentPid int
	IsWorker  bool // started by this package
}

// Current returns the current process's Info ("MainProcess" in the parent).
func Current() Info {
	if child.active {
		return Info{Name: child.name, Pid: os.Getpid(), ParentPid: child.parentPid, IsWorker: true}
	}
	return Info{Name: "MainProcess", Pid: os.Getpid(), ParentPid: os.Getppid()}
}

var (
	authOnce sync.Once
	authKey  []byte
)

// AuthKey returns this process's authentication key: 32 random bytes in the
// main process, inherited by every child (Python's current_process().authkey).
// Managers and listeners use it when no key is given.
func AuthKey() []byte {
	if child.active {
		return child.authKey
	}
	authOnce.Do(func() {
		authKey = make([]byte, 32)
		rand.Read(authKey)
	})
	return authKey
}

// CPUCount returns the number of CPUs this process may run on.
func CPUCount() int { return runtime.NumCPU() }

var (
	activeMu sync.Mutex
	active   = map[*Process]struct{}{}
)

func addActive(p *Process) {
	activeMu.Lock()
	active[p] = struct{}{}
	activeMu.Unlock()
}

func removeActive(p *Process) {
	activeMu.Lock()
	delete(active, p)
	activeMu.Unlock()
}

// ActiveChildren returns the started children that have not exited yet,
// pool workers and manager servers included.
func ActiveChildren() []*Process {
	activeMu.Lock()
	defer activeMu.Unlock()
	out := make([]*Process, 0, len(active))
	for p := range active {
		out = append(out, p)
	}
	return out
}

// Shutdown is the at-exit step Python runs implicitly: it first runs this
// process's exit work (queues flush what they buffered, as Python's queue
// finalizers do), then terminates the daemon children and waits for every
// child to exit. It returns ctx's error if ctx ends first, and the exit
// work's errors (items a queue could not write match queue.ErrNotFlushed).
// A worker process runs it when its function returns; a main process calls
// it before it exits (defer process.Shutdown(ctx) right after Init): Go
// cannot run it when main returns, and a non-daemon child still running
// then is killed, saying so on stderr.
func Shutdown(ctx context.Context) error {
	hookErr := exithook.Run()
	kids := ActiveChildren()
	for _, p := range kids {
		if p.opts.daemon {
			p.Terminate()
		}
	}
	for _, p := range kids {
		if err := waitDone(ctx, p.done); err != nil {
			return errors.Join(fmt.Errorf("process: shutdown: %w", err), hookErr)
		}
	}
	if hookErr != nil {
		return fmt.Errorf("process: shutdown: %w", hookErr)
	}
	return nil
}

//go:build linux

package process

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// osProc is a started child: its pidfd (or pid where the kernel has no
// pidfds), the parent's end of the bootstrap socket, and the goroutines
// copying its output and collecting its reports.
type osProc struct {
	pid        int
	pidfd      *os.File       // nil without pidfd support
	boot       *os.File       // parent's end of the bootstrap socket (in the poller)
	outputs    []*os.File     // read ends of the pipes carrying captured output
	copies     sync.WaitGroup // the goroutines copying outputs
	stderrTail *tailBuffer

	// What the child reported, valid once reported is closed.
	reported chan struct{}
	message  string
	codes    []string
	started  bool

	mu   sync.Mutex
	dead bool
}

type exitStatus struct {
	code   int
	signal syscall.Signal
}

var devNull struct {
	once sync.Once
	fd   int
	err  error
}

func nullFD() (int, error) {
	devNull.once.Do(func() {
		devNull.fd, devNull.err = unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	})
	return devNull.fd, devNull.err
}

// spawn starts a worker and sends it b and arg (the encoded argument,
// which start has checked against maxArgSize).
func spawn(b *bootstrap, arg []byte, handles []int, o *options) (*osProc, error) {
	msg, err := encodeMsg(b)
	if err != nil {
		return nil, err
	}
	if len(msg)-4 > maxHeaderSize {
		return nil, fmt.Errorf("the process name and function name take %d bytes, over the limit of %d", len(msg)-4, maxHeaderSize)
	}
	// The argument follows as a frame of its own, written from where it
	// was encoded.
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(arg)))
	null, err := nullFD()
	if err != nil {
		return nil, err
	}
	// The bootstrap socket. The parent's end is close-on-exec, so no other
	// child inherits it and the lifeline sees EOF exactly when we die.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Our end goes through the runtime poller: neither writing a large
	// bootstrap nor waiting for reports holds a thread.
	if err := unix.SetNonblock(sp[0], true); err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		return nil, err
	}
	proc := &osProc{boot: os.NewFile(uintptr(sp[0]), "bootstrap"), reported: make(chan struct{})}
	// Our copy of the child's end is closed as soon as the child has it
	// (below), and on every early return.
	childBoot := sp[1]
	defer func() {
		if childBoot >= 0 {
			unix.Close(childBoot)
		}
	}()

	var closeAfter []int
	defer func() {
		for _, fd := range closeAfter {
			unix.Close(fd)
		}
	}()
	if o.stderr != nil {
		proc.stderrTail = &tailBuffer{max: 4096}
	}
	// One writer for both streams gets one pipe and one copying goroutine,
	// so its Write is never called concurrently (as os/exec does).
	same := o.stdout != nil && sameWriter(o.stdout, o.stderr)
	var stdoutTail *tailBuffer
	if same {
		stdoutTail = proc.stderrTail
	}
	stdout, err := proc.outputFD(o.stdout, os.Stdout, stdoutTail, &closeAfter)
	if err != nil {
		proc.boot.Close()
		return nil, err
	}
	stderr := stdout
	if !same {
		stderr, err = proc.outputFD(o.stderr, os.Stderr, proc.stderrTail, &closeAfter)
		if err != nil {
			proc.boot.Close()
			return nil, err
		}
	}

	files := make([]uintptr, 0, firstHandleFD+len(handles))
	files = append(files, uintptr(null), uintptr(stdout), uintptr(stderr), uintptr(childBoot))
	for _, fd := range handles {
		files = append(files, uintptr(fd))
	}
	env := mergeEnv(os.Environ(), o.env, []string{EnvBootstrap + "=3"})
	// argv[0] names the worker for ps; the worker restores os.Args[0].
	argv := append([]string{workerTitle(o.name)}, os.Args[min(1, len(os.Args)):]...)
	pidfd := -1
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: files,
		// No Pdeathsig: a worker sees its parent's death on the bootstrap
		// socket from its init function on (watchParent), and says why it
		// dies; a signal armed here would kill it silently before then.
		Sys: &syscall.SysProcAttr{PidFD: &pidfd},
	}
	if noPidfd {
		attr.Sys.PidFD = nil
	}
	// Any thread may fork: with no parent-death signal (which follows the
	// thread that forked), no thread has to outlive the children.
	pid, err := syscall.ForkExec(selfPath(), argv, attr)
	if err != nil && pidfdUnsupported(err) {
		attr.Sys.PidFD = nil
		pidfd = -1
		pid, err = syscall.ForkExec(selfPath(), argv, attr)
	}
	// Close our copy of the child's end before writing the bootstrap: if
	// the child dies before reading it all, the write then fails with EPIPE
	// instead of blocking forever on a socket that we keep open ourselves.
	unix.Close(childBoot)
	childBoot = -1
	if err != nil {
		proc.boot.Close()
		return nil, err
	}
	proc.pid = pid
	if pidfd >= 0 {
		unix.SetNonblock(pidfd, true)
		proc.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	}
	// A large argument does not fit the socket buffer: the write waits
	// until the child, which reads it first thing, has taken it.
	if _, err := proc.boot.Write(msg); err != nil {
		proc.signal(syscall.SIGKILL)
	} else if _, err := proc.boot.Write(arg); err != nil {
		proc.signal(syscall.SIGKILL)
	}
	go proc.collectReports()
	return proc, nil
}

// mergeEnv concatenates environment lists, a later entry for a key
// replacing an earlier one (as os/exec does). A plain concatenation would
// not do: when a key appears twice, the child's os.Getenv returns the
// first, so WithEnv could not override an inherited variable.
func mergeEnv(lists ...[]string) []string {
	var out []string
	index := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, ok := strings.Cut(kv, "=")
			if !ok {
				continue // not KEY=VALUE: os.Environ never returns such entries
			}
			if i, dup := index[k]; dup {
				out[i] = kv
				continue
			}
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// noPidfd makes spawn use the fallback for kernels without pidfds (before
// 5.3); only tests set it.
var noPidfd = false

func pidfdUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS)
}

func sameWriter(a, b io.Writer) bool {
	if a == nil || b == nil {
		return false
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// outputFD returns the descriptor the child gets as its stdout or stderr:
// def's when w is nil (os.Stdout or os.Stderr as they are now, which a
// program or the testing package may have redirected), the file's when w
// is an *os.File, else a pipe whose read end is copied into w (and tail) by
// a goroutine.
func (p *osProc) outputFD(w io.Writer, def *os.File, tail *tailBuffer, closeAfter *[]int) (int, error) {
	if w == nil {
		w = def
	}
	if f, ok := w.(*os.File); ok && tail == nil {
		rc, err := f.SyscallConn()
		if err == nil {
			fd := -1
			rc.Control(func(u uintptr) { fd = int(u) })
			if fd >= 0 {
				return fd, nil
			}
		}
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	// Take the raw write end without os.File.Fd (which would switch it to
	// blocking mode) and keep it open only until the child has it. The
	// copy is close-on-exec from the start: a child started meanwhile by
	// another goroutine must not inherit it.
	wfd, err := unix.FcntlInt(uintptr(rawOf(pw)), unix.F_DUPFD_CLOEXEC, 0)
	pw.Close()
	if err != nil {
		r.Close()
		return -1, err
	}
	*closeAfter = append(*closeAfter, wfd)
	sink := &outputSink{w: w, tail: tail}
	p.outputs = append(p.outputs, r)
	// After the child's exit, at most a pipe's capacity of its output can
	// still be buffered.
	capacity, err := unix.FcntlInt(uintptr(rawOf(r)), unix.F_GETPIPE_SZ, 0)
	if err != nil || capacity <= 0 {
		capacity = 1 << 20
	}
	p.copies.Add(1)
	go func() {
		defer p.copies.Done()
		copyUntilExit(sink, r, capacity)
		r.Close()
	}()
	return wfd, nil
}

// outputSink is where the copy of a child's output goes: w, and the tail
// kept for ExitError. A w that fails is not written to again, but the
// copy goes on: stopping it would close the pipe and kill the child with
// SIGPIPE at its next write, for a fault that is not its own.
type outputSink struct {
	w      io.Writer
	tail   *tailBuffer
	failed bool
}

func (s *outputSink) Write(b []byte) (int, error) {
	if !s.failed {
		if _, err := s.w.Write(b); err != nil {
			s.failed = true
		}
	}
	if s.tail != nil {
		s.tail.Write(b)
	}
	return len(b), nil
}

func rawOf(f *os.File) int {
	fd := -1
	rc, _ := f.SyscallConn()
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

// siginfoChld is the start of the kernel's siginfo_t for SIGCHLD, as
// waitid(2) fills it (x/sys keeps the union opaque).
type siginfoChld struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	UID    uint32
	Status int32
	_      [100]byte
}

const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// wait blocks until the child exits and reaps it. With a pidfd it waits in
// the runtime poller, so a thousand waiting children cost no threads.
func (p *osProc) wait() exitStatus {
	if p.pidfd == nil {
		// Without a pidfd, wait for the exit without reaping, then reap
		// under p.mu, which signal holds while it signals the pid: a pid
		// that was reaped may already belong to another process.
		var info siginfoChld
		for {
			_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(p.pid),
				uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOWAIT, 0, 0)
			if e != unix.EINTR {
				break
			}
		}
		var ws unix.WaitStatus
		p.mu.Lock()
		p.dead = true
		for {
			_, err := unix.Wait4(p.pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		p.mu.Unlock()
		if ws.Signaled() {
			return exitStatus{code: -int(ws.Signal()), signal: ws.Signal()}
		}
		return exitStatus{code: ws.ExitStatus()}
	}
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return exitStatus{code: -1}
	}
	var info siginfoChld
	var werr error
	rerr := rc.Read(func(fd uintptr) bool {
		info = siginfoChld{}
		_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PIDFD, fd,
			uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG, 0, 0)
		switch {
		case e == unix.EAGAIN:
			return false
		case e == unix.EINTR:
			return false
		case e != 0:
			werr = e
			return true
		case info.Pid == 0:
			return false // still running: wait for the pidfd to become readable
		}
		return true
	})
	p.mu.Lock()
	p.dead = true
	p.mu.Unlock()
	if rerr != nil || werr != nil {
		return exitStatus{code: -1}
	}
	switch info.Code {
	case cldExited:
		return exitStatus{code: int(info.Status)}
	case cldKilled, cldDumped:
		return exitStatus{code: -int(info.Status), signal: syscall.Signal(info.Status)}
	}
	return exitStatus{code: -1}
}

// finish runs once the child is reaped: it waits for the output copies
// and the reports, and releases the descriptors.
func (p *osProc) finish() {
	// Everything the child wrote is now buffered in our ends of its output
	// pipes and of the bootstrap socket. The deadline makes the readers
	// take that and stop, even if some other process keeps the other end
	// open: typically a grandchild started with os/exec that inherited the
	// child's stdout and outlives it (os/exec's Cmd.Wait hangs on that
	// unless WaitDelay is set, go.dev/issue/23019). Its later output is
	// dropped; the pipe's read end is closed.
	exit := time.Now()
	for _, r := range p.outputs {
		r.SetReadDeadline(exit)
	}
	p.boot.SetReadDeadline(exit)
	p.copies.Wait()
	<-p.reported
	p.boot.Close()
	if p.pidfd != nil {
		p.pidfd.Close()
	}
}

// collectReports reads what the child reports on the bootstrap socket
// while it runs. Reading as it comes, rather than after the exit, matters:
// a report larger than the socket buffer would otherwise block the child
// in its write while we wait for it to exit.
func (p *osProc) collectReports() {
	defer close(p.reported)
	var buf cappedBuffer
	buf.max = 2 * maxReportSize // more than a well-behaved child sends
	copyUntilExit(&buf, p.boot, buf.max)
	r := bytes.NewReader(buf.b)
	for {
		var rep report
		if err := readMsg(r, &rep, maxReportSize); err != nil {
			return
		}
		switch rep.Kind {
		case "started":
			p.started = true
		case "error":
			if p.message != "" {
				p.message += "\n"
			}
			p.message += rep.Message
			p.codes = append(p.codes, rep.Codes...)
		}
	}
}

// reports returns what the child reported; finish must have returned.
func (p *osProc) reports() (message string, codes []string, started bool) {
	<-p.reported
	return p.message, p.codes, p.started
}

// copyUntilExit copies f into w until end of file. Once f's read deadline
// has passed (finish sets it when the child is reaped), it takes what is
// already buffered, at most limit bytes, and returns.
func copyUntilExit(w io.Writer, f *os.File, limit int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		// Read no longer reads past the deadline; read the rest directly,
		// without waiting: what is not there now came from someone else.
		rc, err := f.SyscallConn()
		if err != nil {
			return
		}
		for limit > 0 {
			var n int
			var rerr error
			cerr := rc.Control(func(fd uintptr) {
				n, rerr = unix.Read(int(fd), buf[:min(len(buf), limit)])
			})
			if rerr == unix.EINTR {
				continue
			}
			if cerr != nil || rerr != nil || n <= 0 {
				return
			}
			w.Write(buf[:n])
			limit -= n
		}
		return
	}
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	b   []byte
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (p *osProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return nil
	}
	if p.pidfd != nil {
		rc, err := p.pidfd.SyscallConn()
		if err != nil {
			return nil // closed: the child was reaped
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.PidfdSendSignal(int(fd), sig, nil, 0)
		}); err != nil {
			return nil
		}
		if errors.Is(serr, unix.ESRCH) {
			return nil
		}
		return serr
	}
	// Without pidfds the pid stays ours until wait reaps it, which it
	// does under p.mu after setting dead.
	err := unix.Kill(p.pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

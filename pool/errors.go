//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned for work submitted after Close or Terminate
	// (Python: ValueError("Pool not running")).
	ErrClosed = errors.New("pool: closed")
	// ErrTerminated is the error of every task that was queued or running
	// when Terminate was called.
	ErrTerminated = errors.New("pool: terminated")
	// ErrTimeout is the error of a task that ran longer than TaskTimeout;
	// its worker was killed and replaced.
	ErrTimeout = errors.New("pool: task timed out")
	// ErrInvalidOption is returned by New, Map and the other calls for an
	// option out of range (Workers(0), MaxTasksPerChild(-1), Chunksize(0))
	// or a callback whose type does not match the task's result type.
	ErrInvalidOption = errors.New("pool: invalid option")
	// ErrNotClosed is returned by Join on a pool that is still running:
	// call Close or Terminate first (Python asserts the same).
	ErrNotClosed = errors.New("pool: Join called before Close or Terminate")
	// ErrBroken reports that the pool cannot start workers any more: each
	// slot failed to start one three times in a row for a cause that
	// persists (the Initializer fails, the program exits before it is
	// ready); workers killed by a signal while they start do not count.
	// Queued and later tasks fail with it, as does New when a first worker
	// cannot start.
	ErrBroken = errors.New("pool: workers cannot be started")
)

// TaskError is the error a task returned, or the panic it raised, in the
// worker. The worker lives on. Index is the task's position in the
// arguments of Map, Imap and the like, 0 for Apply.
type TaskError struct {
	Index   int
	Message string // the error's text, or "panic: " and the panic value
	Stack   string // the worker's stack at the panic; empty for returned errors
	kind    int
	single  bool // Apply's: the text names no index
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("pool: %s: %s", taskName(e.Index, e.single), e.Message)
}

// taskName names item idx of a call in errors: "task 5", or only "task"
// for the one task of Apply or ApplyAsync, whose index says nothing.
func taskName(idx int, single bool) string {
	if single {
		return "task"
	}
	return "task " + strconv.Itoa(idx)
}

// markSingle makes err, the error of Apply's one task, name no index.
func markSingle(err error) {
	var te *TaskError
	if errors.As(err, &te) {
		te.single = true
	}
	var wd *WorkerDiedError
	if errors.As(err, &wd) {
		wd.single = true
	}
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when that is
// what the task returned (the text of other errors is all that crosses the
// process boundary).
func (e *TaskError) Unwrap() error {
	switch e.kind {
	case kindCanceled:
		return context.Canceled
	case kindDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// WorkerDiedError reports that a worker process died while it held task
// Index: it called os.Exit, was killed (SIGKILL, the OOM killer), crashed
// in cgo, or ran out of its MemoryLimit or CPUTime. Only the tasks that
// worker held fail; the worker is replaced and the pool goes on (Python's
// Pool hangs forever here, bpo-22393).
type WorkerDiedError struct {
	Index  int
	Pid    int
	Code   int            // the exit code, or -N when killed by signal N (as process.ExitCode)
	Signal syscall.Signal // the signal that killed the worker, 0 if it exited
	reason string         // a likely cause known to the pool, for Error
	single bool           // Apply's: the text names no index
}

func (e *WorkerDiedError) Error() string {
	s := fmt.Sprintf("pool: %s: worker (pid %d) ", taskName(e.Index, e.single), e.Pid)
	if e.Signal != 0 {
		s += fmt.Sprintf("was killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		s += fmt.Sprintf("exited with code %d", e.Code)
	}
	if e.reason != "" {
		s += ": " + e.reason
	}
	return s
}

// deathReason explains a worker death from the limits the pool set.
func deathReason(code int, sig syscall.Signal, o *options, cpuFlag bool) string {
	switch {
	case cpuFlag:
		return fmt.Sprintf("the task used more than its CPU time limit (%v)", cpuSeconds(o.cpuTime))
	case sig == 0 && code == 2 && o.memLimit > 0:
		return fmt.Sprintf("probably out of memory (the worker's MemoryLimit is %d bytes; the Go runtime exits with code 2 when it cannot allocate)", o.memLimit)
	case sig == unix.SIGKILL:
		return "SIGKILL (sent by someone, or the kernel's OOM killer)"
	case sig == unix.SIGSEGV || sig == unix.SIGBUS:
		return "a memory fault (cgo code?)"
	}
	return ""
}

func cpuSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

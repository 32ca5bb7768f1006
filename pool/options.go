//go:build linux

package pool

import (
	"fmt"
	"os"
	"time"

	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/process"
	"golang.org/x/sys/unix"
)

// Option configures a Pool (see New).
type Option interface{ apply(*options) }

type options struct {
	workers  int
	maxTasks int // 0: unlimited
	timeout  time.Duration
	memLimit int64
	cpuTime  time.Duration
	init     *initSpec
	errs     []error
}

// initSpec is an encoded Initializer. Its descriptors are our own
// duplicates, kept for the pool's lifetime so that replacement workers get
// them too.
type initSpec struct {
	name  string
	arg   []byte
	files []*os.File
	err   error
}

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("pool: "+format+": %w", append(args, ErrInvalidOption)...)
}

// Workers sets the number of worker processes (default process.CPUCount).
// n < 1 is an error from New.
func Workers(n int) Option {
	return optFunc(func(o *options) {
		if n < 1 {
			o.errs = append(o.errs, invalid("Workers(%d): need at least one worker", n))
			return
		}
		o.workers = n
	})
}

// MaxTasksPerChild replaces a worker after it has run n tasks (items, not
// chunks), to bound what a leaky task can accumulate. n < 1 is an error
// from New; leave the option out for workers that live as long as the pool.
func MaxTasksPerChild(n int) Option {
	return optFunc(func(o *options) {
		if n < 1 {
			o.errs = append(o.errs, invalid("MaxTasksPerChild(%d): need at least one task", n))
			return
		}
		o.maxTasks = n
	})
}

// TaskTimeout bounds the time a task may run: a task still running after d
// has its worker killed (SIGKILL) and replaced, and fails with ErrTimeout.
// The pool notices within about d/10 (at least 1 ms, at most 100 ms).
func TaskTimeout(d time.Duration) Option {
	return optFunc(func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, invalid("TaskTimeout(%v): need a positive duration", d))
			return
		}
		o.timeout = d
	})
}

// MemoryLimit lets each worker's private writable memory (RLIMIT_DATA: the
// Go heap, goroutine and thread stacks) grow by at most bytes beyond what it
// had when it started, and sets the Go runtime's soft memory limit a little
// below that so that the garbage collector works harder first. The count is
// of mapped memory, not resident memory. A task that needs more kills its
// worker (the Go runtime exits with code 2; a failed thread creation
// aborts it) and fails with a *WorkerDiedError; the worker is replaced.
// bytes < 1 is an error from New.
func MemoryLimit(bytes int64) Option {
	return optFunc(func(o *options) {
		if bytes < 1 {
			o.errs = append(o.errs, invalid("MemoryLimit(%d): need a positive size", bytes))
			return
		}
		o.memLimit = bytes
	})
}

// CPUTime limits the CPU time each task may use, through RLIMIT_CPU,
// raised before every task. The kernel counts whole seconds, so d is
// rounded up to a second. A task over its limit kills its worker, which is
// replaced; the task fails with a *WorkerDiedError saying so.
func CPUTime(d time.Duration) Option {
	return optFunc(func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, invalid("CPUTime(%v): need a positive duration", d))
			return
		}
		o.cpuTime = d
	})
}

// Initializer runs f(ctx, arg) in each worker before its first task, as
// Python's initializer/initargs: open a connection, load a model, keep a
// shared queue in a package variable. arg travels like a process argument,
// so handles (queues, locks, pipes, files) arrive working: this is how a
// task reaches shared objects. If f fails, New returns its error; a
// replacement worker whose initializer fails is retried, and three failures
// in a row break the pool (ErrBroken).
func Initializer[A any](f process.Func[A], arg A) Option {
	spec := &initSpec{name: f.Name()}
	b, files, err := wire.Marshal(arg)
	if err != nil {
		spec.err = invalid("Initializer(%s): %v", f.Name(), err)
	} else {
		spec.arg = b
		// Keep our own duplicates: the caller may close its handles once
		// New returns, and replacement workers need them later.
		for _, fd := range files.FDs() {
			d, derr := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if derr != nil {
				spec.err = fmt.Errorf("pool: Initializer(%s): dup: %w", f.Name(), derr)
				break
			}
			spec.files = append(spec.files, os.NewFile(uintptr(d), "initarg"))
		}
		files.Close()
	}
	return optFunc(func(o *options) {
		if spec.err != nil {
			o.errs = append(o.errs, spec.err)
			return
		}
		o.init = spec
	})
}

// MapOption configures one Map, MapAsync, Imap or ImapUnordered call.
type MapOption interface{ applyMap(*callOptions) }

// ApplyOption configures one Apply or ApplyAsync call.
type ApplyOption interface{ applyApply(*callOptions) }

type callOptions struct {
	chunksize int
	progress  func(done, total int)
	onResult  any // func(int, R)
	onError   func(int, error)
	errs      []error
}

type mapOptFunc func(*callOptions)

func (f mapOptFunc) applyMap(o *callOptions) { f(o) }

// Chunksize sets how many items travel to a worker together. The default is
// Python's for map: ceil(len(args) / (4 * workers)), which amortises the
// per-message cost over many small tasks; use 1 for long, uneven tasks.
// Results still stream back while a chunk runs. n < 1 is an error.
func Chunksize(n int) MapOption {
	return mapOptFunc(func(o *callOptions) {
		if n < 1 {
			o.errs = append(o.errs, invalid("Chunksize(%d): need at least 1", n))
			return
		}
		o.chunksize = n
	})
}

// Progress calls f(done, total) in the parent as results arrive (in
// batches, not for every item), so that a long map can drive a progress
// bar. done counts tasks that finished, successfully or not. Calls are
// serialised; f must not block.
func Progress(f func(done, total int)) MapOption {
	return mapOptFunc(func(o *callOptions) { o.progress = f })
}

// CallbackOption is a result or error callback; it configures both maps
// and applies.
type CallbackOption struct{ f func(*callOptions) }

func (c CallbackOption) applyMap(o *callOptions)   { c.f(o) }
func (c CallbackOption) applyApply(o *callOptions) { c.f(o) }

// OnResult calls f(index, result) in the parent for every task that
// succeeds (Python's callback; index is 0 for Apply), until the call has
// its answer: every callback has returned by the time Map returns. R must
// be the task's result type. Calls are serialised per call of Map or
// Apply and run on the goroutine that reads the worker's results, so f
// must not block, nor wait on the pool (Join, Terminate).
func OnResult[R any](f func(index int, result R)) CallbackOption {
	return CallbackOption{func(o *callOptions) { o.onResult = f }}
}

// OnError calls f(index, err) in the parent for every task that fails
// (Python's error_callback), with the error the task's result carries.
// It runs like OnResult, and must not block either.
func OnError(f func(index int, err error)) CallbackOption {
	return CallbackOption{func(o *callOptions) { o.onError = f }}
}

//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// Task is a function registered with Register, runnable in pool workers
// with an argument of type A and a result of type R.
type Task[A, R any] struct {
	name string
}

// Name returns the name the task was registered under.
func (t Task[A, R]) Name() string { return t.name }

// taskEntry runs one span of a task's items in a worker.
type taskEntry struct {
	name string
	run  func(ctx context.Context, rt *workerRT, sp *spanMsg)
}

var (
	tasksMu sync.RWMutex
	tasks   = map[string]*taskEntry{}
)

func lookupTask(name string) *taskEntry {
	tasksMu.RLock()
	defer tasksMu.RUnlock()
	return tasks[name]
}

// Register makes fn runnable in pool workers under name and returns the
// handle Map, Apply and the others take. Call it at package level
// (var t = pool.Register(...)) or from an init function: a worker is the
// same binary, re-executed, and finds the task by name in the table it
// built the same way before main ran.
//
// Register panics on an empty name, a name with whitespace, a nil fn, or a
// name registered twice: these are programming errors, found at start-up.
func Register[A, R any](name string, fn func(ctx context.Context, arg A) (R, error)) Task[A, R] {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		panic(fmt.Sprintf("pool: invalid task name %q", name))
	}
	if fn == nil {
		panic(fmt.Sprintf("pool: nil function registered as %q", name))
	}
	if len(name) > 1<<16-1 {
		panic(fmt.Sprintf("pool: task name of %d bytes is too long", len(name)))
	}
	tr := &taskRunner[A, R]{fn: fn, ac: newCodec[A](), rc: newCodec[R]()}
	e := &taskEntry{name: name, run: tr.run}
	tasksMu.Lock()
	defer tasksMu.Unlock()
	if _, dup := tasks[name]; dup {
		panic(fmt.Sprintf("pool: task %q registered twice", name))
	}
	tasks[name] = e
	return Task[A, R]{name: name}
}

// taskRunner runs a span of one task's items in a worker.
type taskRunner[A, R any] struct {
	fn func(context.Context, A) (R, error)
	ac codec[A]
	rc codec[R]
}

func (t *taskRunner[A, R]) run(ctx context.Context, rt *workerRT, sp *spanMsg) {
	rt.dec.reset(sp.args)
	// One argument and one result per span, reused: the codecs take
	// pointers through function values, so variables declared per item
	// would each be a heap allocation.
	a, r := new(A), new(R)
	for i := 0; i < sp.count; {
		i = t.runFrom(ctx, rt, sp, i, a, r)
	}
}

// runFrom runs the span's items from i on, and returns where it stopped:
// sp.count, or the item after one that panicked. A panicking task is that
// item's *TaskError, with the panic's stack, and the worker goes on with
// the next; the recover is set up here, once for many items, rather than
// around each call of fn, which a map of a trivial task would feel.
func (t *taskRunner[A, R]) runFrom(ctx context.Context, rt *workerRT, sp *spanMsg, i int, a *A, r *R) (next int) {
	var zeroA A
	var zeroR R
	d := &rt.dec
	running := -1 // the item in fn, if any
	defer func() {
		if running < 0 {
			return
		}
		x := recover()
		if x == nil {
			// fn called runtime.Goexit: the goroutine ends and nothing
			// can record the item. Let it go.
			return
		}
		rec := appendErrRecord(rt.scratch[:0], kindPanic, fmt.Sprintf("panic: %v", x), string(debug.Stack()))
		*a, *r = zeroA, zeroR
		rt.end(sp, sp.start+running, rec)
		next = running + 1
	}()
	for ; i < sp.count; i++ {
		idx := sp.start + i
		*a = zeroA
		p0 := d.p
		if err := t.ac.dec(d, a); err != nil {
			msg := fmt.Sprintf("pool: cannot decode the argument as %T: %v", zeroA, err)
			if n, lerr := msgp.Len(d.b[p0:]); lerr == nil {
				// A well-formed value of the wrong kind or range: this
				// item fails, the next ones are where they should be.
				d.p = p0 + n
				rt.record(sp, idx, appendErrRecord(rt.scratch[:0], kindInternal, msg, ""))
				continue
			}
			// The rest of the chunk cannot be found either.
			for ; i < sp.count; i++ {
				rt.record(sp, sp.start+i, appendErrRecord(rt.scratch[:0], kindInternal, msg, ""))
			}
			return sp.count
		}
		if rt.stopped(sp.job, idx) {
			rt.record(sp, idx, []byte{statusSkipped})
			continue
		}
		rt.begin(sp.job, idx)
		running = i
		var err error
		*r, err = t.fn(ctx, *a)
		running = -1
		rec := rt.scratch[:0]
		if err != nil {
			rec = appendErrRecord(rec, errKind(err), err.Error(), "")
		} else {
			rec = append(rec, statusOK)
			var eerr error
			if rec, eerr = t.rc.enc(&rt.enc, rec, r); eerr != nil {
				rec = appendErrRecord(rec[:0], kindInternal,
					fmt.Sprintf("pool: cannot encode the result %T: %v", zeroR, eerr), "")
			}
		}
		*r = zeroR // the result is encoded: hold nothing of it
		rt.end(sp, idx, rec)
		if cap(rec) <= 1<<20 {
			rt.scratch = rec // reused; a huge one is left to the GC
		}
	}
	*a = zeroA
	return sp.count
}

func errKind(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return kindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return kindDeadline
	}
	return kindError
}

//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
)

// start validates a call and queues its job. It returns a nil collector for
// an empty argument list.
func start[A, R any](p *Pool, t Task[A, R], args []A, mode int, co *callOptions, onFinish func(*collector[R])) (*collector[R], error) {
	if len(co.errs) > 0 {
		return nil, errors.Join(co.errs...)
	}
	var onResult func(int, R)
	if co.onResult != nil {
		f, ok := co.onResult.(func(int, R))
		if !ok {
			var zero R
			return nil, invalid("OnResult: callback %T does not match the result type %T of task %s", co.onResult, zero, t.name)
		}
		onResult = f
	}
	if t.name == "" {
		return nil, fmt.Errorf("pool: the zero Task: get tasks from pool.Register")
	}
	if len(args) == 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.state != stateRunning {
			return nil, ErrClosed
		}
		return nil, nil
	}
	n := len(args)
	chunk := co.chunksize
	if chunk == 0 {
		// Python's default for map: four chunks per worker.
		w := 4 * p.workers()
		chunk = (n + w - 1) / w
	}
	c := newCollector[R](p, n, mode, co, onResult)
	if onFinish != nil {
		c.onFinish = func() { onFinish(c) }
	}
	ac := newCodec[A]()
	j := &job{task: t.name, n: n, limit: n, chunk: chunk, sink: c,
		stopOnErr: mode == modeMap, single: mode == modeOne}
	j.enc = func(b []byte, start, end int) ([]byte, int, error) {
		if ac.encRun != nil {
			return ac.encRun(b, args[start:end]), -1, nil
		}
		es := encPool.Get().(*encState)
		defer encPool.Put(es)
		for i := start; i < end; i++ {
			k := len(b)
			var err error
			if b, err = ac.enc(es, b, &args[i]); err != nil {
				return b[:k], i, err
			}
		}
		return b, -1, nil
	}
	c.j = j
	if err := p.submit(j); err != nil {
		return nil, err
	}
	return c, nil
}

var encPool = sync.Pool{New: func() any { return new(encState) }}

func mapOpts(opts []MapOption) *callOptions {
	co := &callOptions{}
	for _, o := range opts {
		o.applyMap(co)
	}
	return co
}

// Map runs t on every element of args in the pool's workers and returns
// the results in order (Python's Pool.map). Arguments travel in chunks
// (see Chunksize).
//
// If tasks fail, Map returns the error of the lowest-index failed task (a
// *TaskError, a *WorkerDiedError, or one matching ErrTimeout), as a loop
// over args that stops at the first error would: once a task fails, no
// task after it that has not started runs (those running get their ctx
// cancelled), while the tasks before it still run, since one of them may
// fail too. If ctx ends first, Map stops dispatching, cancels the ctx of
// the tasks running for it in the workers, and returns ctx's error at
// once. A closed pool gives ErrClosed.
func Map[A, R any](ctx context.Context, p *Pool, t Task[A, R], args []A, opts ...MapOption) ([]R, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pool: map: %w", err)
	}
	c, err := start(p, t, args, modeMap, mapOpts(opts), nil)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return []R{}, nil
	}
	// args belong to the caller again once Map returns.
	defer p.release(c.j)
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done:
		default:
			c.abandon()
			return nil, fmt.Errorf("pool: map: %w", ctx.Err())
		}
	}
	return c.mapResult()
}

// MapAsync is Map without waiting (Python's map_async): the result is the
// results slice, or the lowest-index error. The pool reads args until the
// result is ready: do not modify them before.
func MapAsync[A, R any](p *Pool, t Task[A, R], args []A, opts ...MapOption) *AsyncResult[[]R] {
	ar := newAsyncResult[[]R]()
	c, err := start(p, t, args, modeMap, mapOpts(opts), func(c *collector[R]) {
		p.release(c.j) // args belong to the caller again once the result is ready
		ar.set(c.mapResult())
	})
	switch {
	case err != nil:
		ar.set(nil, err)
	case c == nil:
		ar.set([]R{}, nil)
	default:
		ar.abandon = c.abandon
	}
	return ar
}

// Imap is Map as an iterator (Python's imap): it yields each result, or
// that task's error, in the order of args, as soon as it is ready, while
// later tasks still run. A failed task does not end the iteration: it
// yields exactly len(args) values, also when the call is refused (a closed
// or broken pool: every index yields that error). The tasks are queued
// when the iteration starts. Leaving the loop early, or ctx ending
// (yielded as a last error), cancels the tasks not yet done.
func Imap[A, R any](ctx context.Context, p *Pool, t Task[A, R], args []A, opts ...MapOption) iter.Seq2[R, error] {
	return imap(ctx, p, t, args, modeOrdered, opts)
}

// ImapUnordered is Imap yielding results in the order they finish (Python's
// imap_unordered).
func ImapUnordered[A, R any](ctx context.Context, p *Pool, t Task[A, R], args []A, opts ...MapOption) iter.Seq2[R, error] {
	return imap(ctx, p, t, args, modeUnordered, opts)
}

func imap[A, R any](ctx context.Context, p *Pool, t Task[A, R], args []A, mode int, opts []MapOption) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		var zero R
		if err := ctx.Err(); err != nil {
			yield(zero, fmt.Errorf("pool: imap: %w", err))
			return
		}
		c, err := start(p, t, args, mode, mapOpts(opts), nil)
		if err != nil {
			// Each argument gets its value: a caller counting results
			// must not take a refused call for a short one.
			for range args {
				if !yield(zero, err) {
					return
				}
			}
			return
		}
		if c == nil {
			return
		}
		defer p.release(c.j) // args belong to the caller again
		defer c.abandon()    // a no-op once every result was accounted
		var batch []outcome[R]
		for i := 0; i < c.n; {
			var ok bool
			if batch, ok = c.next(ctx, i, batch[:0]); !ok {
				yield(zero, fmt.Errorf("pool: imap: %w", ctx.Err()))
				return
			}
			for k, o := range batch {
				batch[k] = outcome[R]{} // yielded: hold nothing of it
				if !yield(o.r, o.err) {
					return
				}
			}
			i += len(batch)
		}
	}
}

func applyOpts(opts []ApplyOption) *callOptions {
	co := &callOptions{}
	for _, o := range opts {
		o.applyApply(co)
	}
	return co
}

// Apply runs t(arg) in a worker and returns its result (Python's apply).
// If ctx ends first, the task's ctx in the worker is cancelled and Apply
// returns ctx's error.
func Apply[A, R any](ctx context.Context, p *Pool, t Task[A, R], arg A, opts ...ApplyOption) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, fmt.Errorf("pool: apply: %w", err)
	}
	ar := ApplyAsync(p, t, arg, opts...)
	r, err := ar.Get(ctx)
	if err != nil && !ar.Ready() && ar.abandon != nil {
		ar.abandon()
	}
	return r, err
}

// ApplyAsync queues t(arg) and returns at once (Python's apply_async). An
// error in submitting (a closed pool) is the result's error.
func ApplyAsync[A, R any](p *Pool, t Task[A, R], arg A, opts ...ApplyOption) *AsyncResult[R] {
	ar := newAsyncResult[R]()
	c, err := start(p, t, []A{arg}, modeOne, applyOpts(opts), func(c *collector[R]) {
		c.mu.Lock()
		r, err := c.takeLocked(0)
		c.mu.Unlock()
		ar.set(r, err)
	})
	if err != nil {
		var zero R
		ar.set(zero, err)
		return ar
	}
	ar.abandon = c.abandon
	return ar
}

// AsyncResult is the pending result of ApplyAsync or MapAsync (Python's
// AsyncResult). Its methods are safe for concurrent use.
type AsyncResult[R any] struct {
	done    chan struct{}
	once    sync.Once
	val     R
	err     error
	abandon func()
}

func newAsyncResult[R any]() *AsyncResult[R] {
	return &AsyncResult[R]{done: make(chan struct{})}
}

func (a *AsyncResult[R]) set(v R, err error) {
	a.once.Do(func() {
		a.val, a.err = v, err
		close(a.done)
	})
}

// Get waits for the result and returns it with the task's error. If ctx
// ends first it returns ctx's error; the task goes on (Python's get with a
// timeout).
func (a *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	select {
	case <-a.done:
		return a.val, a.err
	default:
	}
	select {
	case <-a.done:
		return a.val, a.err
	case <-ctx.Done():
		var zero R
		return zero, fmt.Errorf("pool: get: %w", ctx.Err())
	}
}

// Wait waits until the result is ready, or returns ctx's error if ctx ends
// first. It does not report the task's own error: Get does.
func (a *AsyncResult[R]) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		select {
		case <-a.done:
			return nil
		default:
		}
		return fmt.Errorf("pool: wait: %w", ctx.Err())
	}
}

// Ready reports whether the result is available.
func (a *AsyncResult[R]) Ready() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Successful reports whether the task finished without error; false while
// it is not Ready.
func (a *AsyncResult[R]) Successful() bool { return a.Ready() && a.err == nil }

// Done returns a channel closed when the result is ready.
func (a *AsyncResult[R]) Done() <-chan struct{} { return a.done }

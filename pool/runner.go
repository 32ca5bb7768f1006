//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pool/driver"
)

// Runner returns a driver.Runner that runs chunks on this pool's workers:
// a backend that receives encoded tasks from elsewhere (the cluster
// module's ServePool) feeds them through it. Errors of the pool keep their
// types (*TaskError, *WorkerDiedError, ErrTimeout, ErrTerminated), with
// Index set to the item's index in the chunk's call. An unknown Task name
// fails every item of the chunk with a *TaskError saying so; Args that do
// not hold Count msgpack values make Run return an error. The Runner's
// deliver calls for one chunk come one at a time; its Close and Terminate
// are the pool's.
func (p *Pool) Runner() driver.Runner { return localRunner{p} }

type localRunner struct{ p *Pool }

func (r localRunner) Workers() int     { return r.p.workers() }
func (r localRunner) Close() error     { return r.p.Close() }
func (r localRunner) Terminate() error { return r.p.Terminate() }

func (r localRunner) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	p := r.p
	if c.Count < 0 || c.Start < 0 {
		return fmt.Errorf("pool: chunk of %d items from index %d: %w", c.Count, c.Start, ErrInvalidOption)
	}
	if c.Count == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	offs, err := splitArgs(c.Args, c.Count)
	if err != nil {
		return fmt.Errorf("pool: chunk of task %q from index %d: %w", c.Task, c.Start, err)
	}
	if lookupTask(c.Task) == nil {
		msg := fmt.Sprintf("pool: no task registered as %q in this binary: the program serving the pool must register every task the callers use", c.Task)
		for i := range c.Count {
			deliver(driver.Result{Index: c.Start + i, Err: &TaskError{Index: c.Start + i, Message: msg, kind: kindInternal}})
		}
		return nil
	}
	s := &rawSink{p: p, deliverFn: deliver, base: c.Start, left: c.Count,
		got: make([]uint64, (c.Count+63)/64), done: make(chan struct{})}
	w := 4 * p.workers()
	j := &job{task: c.Task, n: c.Count, limit: c.Count, chunk: (c.Count + w - 1) / w,
		sink: s, stopOnErr: c.StopOnError, base: c.Start}
	j.enc = func(b []byte, start, end int) ([]byte, int, error) {
		return append(b, c.Args[offs[start]:offs[end]]...), -1, nil
	}
	s.j = j
	if err := p.submit(j); err != nil {
		return err
	}
	defer p.release(j) // c.Args are the caller's again once Run returns
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		if !s.end() {
			return nil // every item was delivered in the meantime
		}
		p.stopJob(j, -1)
		return ctx.Err()
	}
}

// splitArgs returns the offsets of n msgpack values that fill b exactly:
// value i is b[offs[i]:offs[i+1]].
func splitArgs(b []byte, n int) ([]int, error) {
	if len(b) < n {
		// Every value is at least one byte.
		return nil, fmt.Errorf("%d bytes of arguments cannot hold %d values", len(b), n)
	}
	offs := make([]int, n+1)
	off := 0
	for i := range n {
		k, err := msgp.Len(b[off:])
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		off += k
		offs[i+1] = off
	}
	if off != len(b) {
		return nil, fmt.Errorf("%d bytes after the %d arguments", len(b)-off, n)
	}
	return offs, nil
}

// rawSink is the sink of a job that runs a chunk for Runner: it hands each
// item's encoded result, or its error, to the backend's deliver, once per
// item, one at a time, until every item is accounted or Run returned.
type rawSink struct {
	p         *Pool
	j         *job
	deliverFn func(driver.Result) bool
	base      int

	mu    sync.Mutex
	got   []uint64
	left  int
	ended bool
	done  chan struct{}
}

// end stops deliveries (Run is returning); false if all were made.
func (s *rawSink) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.ended
	s.ended = true
	return !was
}

func (s *rawSink) put(idx int, val []byte, err error) {
	s.mu.Lock()
	if s.ended || s.got[idx/64]&(1<<(idx%64)) != 0 {
		s.mu.Unlock()
		return
	}
	s.got[idx/64] |= 1 << (idx % 64)
	s.left--
	s.deliverFn(driver.Result{Index: s.base + idx, Value: val, Err: err})
	if s.left == 0 {
		s.ended = true
		close(s.done)
	}
	s.mu.Unlock()
	if err != nil && s.j.stopOnErr && !errors.Is(err, driver.ErrSkipped) {
		// Map's rule, as the local collector applies it.
		s.p.stopJob(s.j, idx)
	}
}

func (s *rawSink) deliver(payload []byte, idx0, skip, k int) (int, int, error) {
	d := decPool.Get().(*decState)
	defer decPool.Put(d)
	d.reset(payload)
	for range skip {
		if err := skipRecord(d); err != nil {
			s.failRange(idx0, k, fmt.Errorf("pool: task %d: corrupt result from the worker: %w", s.base+idx0, err))
			return d.p, 0, err
		}
	}
	ran := 0
	for i := range k {
		idx := idx0 + i
		st, err := d.byte1()
		if err == nil {
			switch st {
			case statusOK:
				p0 := d.p
				if err = d.skip(); err == nil {
					s.put(idx, payload[p0:d.p], nil)
					ran++
				}
			case statusErr:
				var te *TaskError
				if te, err = readErrRecord(d, s.base+idx); err == nil {
					s.put(idx, nil, te)
				}
			case statusSkipped:
				s.put(idx, nil, driver.ErrSkipped)
			default:
				err = fmt.Errorf("%w: record status %d", errProto, st)
			}
		}
		if err != nil {
			s.failRange(idx, k-i, fmt.Errorf("pool: task %d: corrupt result from the worker: %w", s.base+idx, err))
			return d.p, ran, err
		}
	}
	return d.p, ran, nil
}

func (s *rawSink) fail(idx int, err error) { s.put(idx, nil, err) }

func (s *rawSink) failRange(start, count int, err error) {
	for i := range count {
		s.put(start+i, nil, err)
	}
}

func (s *rawSink) skip(start, count int) {
	for i := range count {
		s.put(start+i, nil, driver.ErrSkipped)
	}
}

func (s *rawSink) value(idx int, val []byte) { s.put(idx, val, nil) }

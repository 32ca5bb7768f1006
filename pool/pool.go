//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"weak"

	"github.com/mpgo/multiprocessing/internal/exithook"
	"github.com/mpgo/multiprocessing/process"
)

const (
	stateRunning = iota
	stateClosed
	stateTerminated
)

const (
	// maxStartFails is how many times in a row a slot may fail to start a
	// worker, for a cause that persists (the program cannot start, exits
	// or fails its Initializer before it is ready), before it is given up.
	maxStartFails = 3
	// A worker killed by someone else's signal before it was ready (a kill
	// storm, an operator's pkill) says nothing about the next one: its slot
	// is started again, without limit, after a delay that doubles from
	// restartMin to restartMax while the kills go on, so that a storm
	// neither breaks the pool nor makes it spin.
	restartMin = 5 * time.Millisecond
	restartMax = 500 * time.Millisecond
	// prefetch is how much work (by the measured time per item) the pool
	// keeps queued at a worker beyond what it is running, so that the
	// worker never waits for a round trip; maxSpans bounds it in chunks.
	// A worker with long tasks gets one task at a time and hoards nothing.
	prefetch = 2 * time.Millisecond
	maxSpans = 256
	// exitGrace is how long a worker whose connection ended may take to
	// exit before it is killed.
	exitGrace = 5 * time.Second
	// terminateWait bounds how long Terminate waits for the killed
	// workers to be reaped.
	terminateWait = 10 * time.Second
)

// Pool is a fixed-size pool of worker processes, the analogue of Python's
// multiprocessing.Pool. Its methods, and the functions taking it, are safe
// for concurrent use.
type Pool struct {
	o options

	mu      sync.Mutex
	state   int
	inNew   bool
	slots   []*worker     // the live (or starting) worker of each slot
	fails   []int         // consecutive start failures per slot, for a cause that persists
	kills   []int         // consecutive starts per slot killed by a signal before ready
	restart []*time.Timer // a slot's delayed start (after kills), pending
	lastErr error         // why the last worker start failed
	live    int           // workers started and not yet gone
	queue   []*job        // jobs with items not yet dispatched, in order
	qhead   int
	nextJob uint64
	broken  error
	perItem map[string]float64 // measured time per item of each task, ns
	gone    chan struct{}      // closed when the pool is shut and every worker is gone
	isGone  bool

	encoded *sync.Cond // broadcast when a job's encoders drops to zero

	drv *backend // the backend of a pool from Open; nil for worker processes

	wg sync.WaitGroup
}

// job is one call of Map, Imap, Apply and the like: n items of one task.
type job struct {
	id      uint64
	task    string
	n       int
	chunk   int
	next    int   // next item never dispatched
	limit   int   // items from limit on are not to run (stopJob); n at first
	retry   []rng // items given back by a dead worker, dispatched first
	inQueue bool
	// stopOnErr: the first failed item stops the job (Map, MapAsync), so
	// a worker that fails one runs none of the job's items above it (Imap
	// goes on after errors; Apply has no item after its one).
	stopOnErr bool
	// encoders counts writers reading the job's arguments (encodeSpan).
	encoders int
	// enc appends the msgpack encoding of items [start, end) to b. On an
	// error it returns b as it was before the failing item, and its index.
	enc    func(b []byte, start, end int) ([]byte, int, error)
	sink   sink
	single bool // Apply's: errors name no index (taskName)
	// base is added to item indexes in the errors the pool makes: a job
	// that runs a chunk for a backend (Runner) reports the caller's
	// indexes.
	base int
	// chunks are the job's chunks in a backend's Run (pools from Open).
	chunks map[*chunkRun]struct{}
}

type rng struct{ start, count int }

// sink receives a job's outcomes (collector implements it).
type sink interface {
	// deliver decodes skip records to drop, then k records for items
	// idx0.., from payload; it returns the bytes it read and how many of
	// the k items ran and succeeded (the pool times those only).
	deliver(payload []byte, idx0, skip, k int) (n, ok int, err error)
	fail(idx int, err error)
	failRange(start, count int, err error)
	skip(start, count int)
	// value decodes the msgpack result of item idx, which succeeded.
	value(idx int, val []byte)
}

func (j *job) hasWork() bool { return len(j.retry) > 0 || j.next < j.limit }

// take removes up to limit items from the job's undispatched ones.
func (j *job) take(limit int) (start, count int) {
	if len(j.retry) > 0 {
		r := &j.retry[0]
		start, count = r.start, min(r.count, limit)
		r.start += count
		r.count -= count
		if r.count == 0 {
			j.retry = j.retry[1:]
		}
		return start, count
	}
	start, count = j.next, min(limit, j.limit-j.next)
	j.next += count
	return start, count
}

// New starts a pool and every one of its workers (default
// process.CPUCount()), each running the Initializer if one is given, before
// it returns. An invalid option, or a worker that cannot start, is an
// error; a failing Initializer's error is returned wrapped in ErrBroken.
func New(opts ...Option) (*Pool, error) {
	o := options{workers: process.CPUCount()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if len(o.errs) > 0 {
		return nil, errors.Join(o.errs...)
	}
	p := &Pool{
		o:       o,
		slots:   make([]*worker, o.workers),
		fails:   make([]int, o.workers),
		kills:   make([]int, o.workers),
		restart: make([]*time.Timer, o.workers),
		perItem: map[string]float64{},
		gone:    make(chan struct{}),
		inNew:   true,
	}
	p.encoded = sync.NewCond(&p.mu)
	p.mu.Lock()
	for i := range p.slots {
		p.startLocked(i)
	}
	first := append([]*worker(nil), p.slots...)
	p.mu.Unlock()
	var err error
	for _, w := range first {
		<-w.readyOrGone
		p.mu.Lock()
		if !w.ready && err == nil {
			err = fmt.Errorf("%w: %v", ErrBroken, p.lastErr)
		}
		p.mu.Unlock()
	}
	if err != nil {
		p.Terminate()
		p.Join(context.Background())
		return nil, err
	}
	p.mu.Lock()
	p.inNew = false
	p.mu.Unlock()
	if o.timeout > 0 {
		p.wg.Add(1)
		go p.watchdog()
	}
	// At exit (process.Shutdown, which a worker process runs when its
	// function returns), a pool still running is terminated, as Python
	// terminates its pools at interpreter exit: Shutdown joins every
	// child, and a running pool's workers wait for tasks forever. A closed
	// pool finishes its queued work first. The hook holds the pool weakly,
	// so that a pool that was joined and dropped can be collected.
	wp := weak.Make(p)
	exithook.Register(func() error {
		if p := wp.Value(); p != nil {
			p.mu.Lock()
			running := p.state == stateRunning
			p.mu.Unlock()
			if running {
				p.Terminate()
			}
		}
		return nil
	})
	return p, nil
}

// Close stops the pool from accepting work (later calls return ErrClosed);
// what is queued still runs, then the workers exit. It does not wait: call
// Join. Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stateRunning {
		p.state = stateClosed
		p.wakeAllLocked()
		p.checkGoneLocked()
	}
	return nil
}

// Terminate kills every worker now (SIGKILL). Queued and running tasks
// fail with ErrTerminated; later calls return ErrClosed. It returns once
// the workers are reaped (a few milliseconds). Terminate is idempotent.
func (p *Pool) Terminate() error {
	var after []func()
	var kill []*process.Process
	p.mu.Lock()
	if p.state != stateTerminated {
		p.state = stateTerminated
		for _, j := range p.queue[p.qhead:] {
			for _, r := range j.retry {
				after = appendFail(after, j, r.start, r.count, ErrTerminated)
			}
			j.retry = nil
			if j.next < j.limit {
				after = appendFail(after, j, j.next, j.limit-j.next, ErrTerminated)
				j.next = j.limit
			}
			j.inQueue = false
		}
		p.queue, p.qhead = nil, 0
		for _, w := range p.slots {
			if w == nil {
				continue
			}
			for _, sp := range w.inflight {
				if sp.done < sp.count {
					after = appendFail(after, sp.job, sp.start+sp.done, sp.count-sp.done, ErrTerminated)
				}
			}
			w.inflight, w.pending = nil, 0
			if w.proc != nil {
				kill = append(kill, w.proc)
			}
		}
		if p.drv != nil {
			// The chunks in Run end with ErrTerminated (runChunk).
			p.drv.cancel()
		}
		p.cancelRestartsLocked()
		p.checkGoneLocked()
	}
	p.mu.Unlock()
	for _, f := range after {
		f()
	}
	if p.drv != nil {
		p.drv.r.Terminate()
	}
	for _, proc := range kill {
		proc.Kill()
	}
	t := time.NewTimer(terminateWait)
	defer t.Stop()
	select {
	case <-p.gone:
	case <-t.C:
	}
	return nil
}

// Join waits until every worker has exited, after Close (once the queued
// work is done) or Terminate. It returns ErrNotClosed on a running pool and
// ctx's error if ctx ends first (the pool is unchanged).
func (p *Pool) Join(ctx context.Context) error {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == stateRunning {
		return ErrNotClosed
	}
	select {
	case <-p.gone:
	case <-ctx.Done():
		return fmt.Errorf("pool: join: %w", ctx.Err())
	}
	// Every worker is gone, so the goroutines serving them are returning.
	p.wg.Wait()
	return nil
}

func appendFail(after []func(), j *job, start, count int, err error) []func() {
	return append(after, func() { j.sink.failRange(start, count, err) })
}

// submit queues a job.
func (p *Pool) submit(j *job) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateRunning {
		return ErrClosed
	}
	if p.broken != nil {
		return p.broken
	}
	p.nextJob++
	j.id = p.nextJob
	p.queue = append(p.queue, j)
	j.inQueue = true
	if p.drv != nil {
		p.pumpLocked()
		return nil
	}
	for _, w := range p.slots {
		if w != nil && p.canTakeLocked(w, j) {
			w.poke()
		}
	}
	return nil
}

// headLocked returns the first queued job with work, dropping finished ones.
func (p *Pool) headLocked() *job {
	for p.qhead < len(p.queue) {
		j := p.queue[p.qhead]
		if j.hasWork() {
			return j
		}
		j.inQueue = false
		p.queue[p.qhead] = nil
		p.qhead++
	}
	p.queue, p.qhead = p.queue[:0], 0
	return nil
}

func (p *Pool) hasWorkLocked() bool { return p.headLocked() != nil }

// requeueLocked gives items back to their job after their worker died
// without starting them; they go before everything else.
func (p *Pool) requeueLocked(j *job, start, count int, after *[]func()) {
	if end := start + count; end > j.limit {
		// Stopped past the limit: those items will not run.
		s := max(start, j.limit)
		*after = append(*after, func() { j.sink.skip(s, end-s) })
		count = s - start
		if count == 0 {
			return
		}
	}
	switch {
	case p.state == stateTerminated:
		*after = appendFail(*after, j, start, count, ErrTerminated)
		return
	case p.broken != nil:
		*after = appendFail(*after, j, start, count, p.broken)
		return
	}
	j.retry = append(j.retry, rng{start, count})
	defer p.wakeAllLocked()
	if !j.inQueue {
		j.inQueue = true
		if p.qhead > 0 {
			p.qhead--
			p.queue[p.qhead] = j
		} else {
			p.queue = append([]*job{j}, p.queue...)
		}
	}
}

// stopJob runs none of j's items above threshold (-1: none) that have not
// started: those never dispatched are skipped here, and the workers holding
// some are told to skip them and to cancel the ctx of the one running if it
// is above threshold. Items at or below threshold still run: Map needs
// them to find the lowest failing index.
func (p *Pool) stopJob(j *job, threshold int) {
	var after []func()
	p.mu.Lock()
	if newLimit := threshold + 1; newLimit < j.limit {
		if s := max(j.next, newLimit); s < j.limit {
			end := j.limit
			after = append(after, func() { j.sink.skip(s, end-s) })
		}
		j.limit = newLimit
		var keep []rng
		for _, r := range j.retry {
			end := r.start + r.count
			if end > newLimit {
				s := max(r.start, newLimit)
				after = append(after, func() { j.sink.skip(s, end-s) })
				r.count = s - r.start
			}
			if r.count > 0 {
				keep = append(keep, r)
			}
		}
		j.retry = keep
		for _, w := range p.slots {
			if w != nil && !w.gone && w.holds(j) {
				w.ctl = append(w.ctl, stopMsg{job: j.id, threshold: int64(threshold)})
				w.poke()
			}
		}
		p.stopChunksLocked(j, threshold)
	}
	p.mu.Unlock()
	for _, f := range after {
		f()
	}
}

func (p *Pool) wakeAllLocked() {
	for _, w := range p.slots {
		if w != nil {
			w.poke()
		}
	}
}

// checkGoneLocked closes gone once the pool is shut and no worker is left.
func (p *Pool) checkGoneLocked() {
	if p.drv != nil {
		p.checkBackendGoneLocked()
		return
	}
	if p.state == stateRunning || p.live > 0 || p.isGone {
		return
	}
	p.isGone = true
	if p.o.init != nil {
		for _, f := range p.o.init.files {
			f.Close()
		}
	}
	close(p.gone)
}

// breakLocked fails everything queued when no worker can be started.
func (p *Pool) breakLocked(after *[]func()) {
	p.broken = fmt.Errorf("%w: %v", ErrBroken, p.lastErr)
	for _, j := range p.queue[p.qhead:] {
		for _, r := range j.retry {
			*after = appendFail(*after, j, r.start, r.count, p.broken)
		}
		j.retry = nil
		if j.next < j.limit {
			*after = appendFail(*after, j, j.next, j.limit-j.next, p.broken)
			j.next = j.limit
		}
		j.inQueue = false
	}
	p.queue, p.qhead = nil, 0
}

// watchdog kills workers whose running task is over TaskTimeout. It reads
// each worker's state word in the shared segment: the word changes at
// every task start, so the same odd value seen for the timeout means the
// same task has been running all that time.
func (p *Pool) watchdog() {
	defer p.wg.Done()
	tick := min(max(p.o.timeout/10, time.Millisecond), 100*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-p.gone:
			return
		case now = <-t.C:
		}
		var kill []*process.Process
		p.mu.Lock()
		for _, w := range p.slots {
			if w == nil || !w.ready || w.gone || w.timedOut || w.seg == nil {
				continue
			}
			st := w.seg.Int64(segState).Load()
			switch {
			case st&1 == 0:
				w.wdState = st
			case st != w.wdState:
				w.wdState, w.wdSince = st, now
			case now.Sub(w.wdSince) >= p.o.timeout:
				w.timedOut = true
				kill = append(kill, w.proc)
			}
		}
		p.mu.Unlock()
		for _, proc := range kill {
			proc.Kill()
		}
	}
}

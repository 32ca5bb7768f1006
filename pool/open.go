//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mpgo/multiprocessing/pool/driver"
)

// backend is the state of a pool from Open: its jobs run as chunks in the
// backend's Run instead of on worker processes.
type backend struct {
	r       driver.Runner
	ctx     context.Context // parent of every chunk's ctx; ended by Terminate
	cancel  context.CancelFunc
	limit   int // chunks kept in Run at once: four per worker
	running int // chunks in Run
}

// errNoResult is the error of an item a backend's Run returned without.
var errNoResult = errors.New("the backend returned without its result")

// Open returns a Pool whose tasks run on r (a backend such as the cluster
// module's) instead of on local worker processes. Every call of package
// pool works on it: Map, MapAsync, Imap, ImapUnordered, Apply, ApplyAsync
// and their options. Close, Join and Terminate act on r: Close lets the
// queued work finish, then closes r; Terminate fails what is queued or
// running with ErrTerminated and terminates r. A nil r is an error.
func Open(r driver.Runner) (*Pool, error) {
	if r == nil {
		return nil, fmt.Errorf("pool: Open: nil driver.Runner: %w", ErrInvalidOption)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		perItem: map[string]float64{},
		gone:    make(chan struct{}),
		drv:     &backend{r: r, ctx: ctx, cancel: cancel},
	}
	p.o.workers = 1
	p.drv.limit = p.inFlight()
	p.encoded = sync.NewCond(&p.mu)
	return p, nil
}

// workers is how many items the pool runs at once: its worker processes,
// or what its backend says now.
func (p *Pool) workers() int {
	if p.drv != nil {
		return max(1, p.drv.r.Workers())
	}
	return p.o.workers
}

// chunkRun is one chunk in a backend's Run: the items it has delivered,
// so that each counts once and those missing when Run returns fail.
type chunkRun struct {
	p            *Pool
	j            *job
	start, count int
	cancel       context.CancelFunc
	stopped      bool // under p.mu: the job no longer wants the chunk's items

	mu    sync.Mutex
	got   []uint64
	ended bool
}

// inFlight is how many chunks a pool from Open keeps in its backend's Run:
// what a driver.Pipeliner asks, else four per worker.
func (p *Pool) inFlight() int {
	if pl, ok := p.drv.r.(driver.Pipeliner); ok {
		return max(1, pl.InFlight())
	}
	return 4 * p.workers()
}

// pumpLocked hands queued chunks to the backend, up to its limit.
func (p *Pool) pumpLocked() {
	d := p.drv
	if p.state == stateTerminated {
		return
	}
	for d.running < d.limit {
		j := p.headLocked()
		if j == nil {
			return
		}
		start, count := j.take(j.chunk)
		ctx, cancel := context.WithCancel(d.ctx)
		cr := &chunkRun{p: p, j: j, start: start, count: count, cancel: cancel,
			got: make([]uint64, (count+63)/64)}
		if j.chunks == nil {
			j.chunks = map[*chunkRun]struct{}{}
		}
		j.chunks[cr] = struct{}{}
		d.running++
		p.wg.Add(1)
		go p.runChunk(ctx, cr)
	}
}

// runChunk encodes a chunk's arguments, runs it on the backend, and fails
// the items the backend did not deliver.
func (p *Pool) runChunk(ctx context.Context, cr *chunkRun) {
	defer p.wg.Done()
	defer cr.cancel()
	j := cr.j
	var after []func()
	p.mu.Lock()
	if end := cr.start + cr.count; end > j.limit {
		// The job was stopped since the chunk was taken.
		s := max(cr.start, j.limit)
		after = append(after, func() { j.sink.skip(s, end-s) })
		cr.count = s - cr.start
	}
	j.encoders++
	p.mu.Unlock()

	var args []byte
	var bad int
	var err error
	if cr.count > 0 {
		args, bad, err = j.enc(nil, cr.start, cr.start+cr.count)
	}
	p.mu.Lock()
	if j.encoders--; j.encoders == 0 {
		p.encoded.Broadcast()
	}
	if err != nil {
		ferr := fmt.Errorf("pool: %s: cannot encode the argument: %w", taskName(bad, j.single), err)
		after = append(after, func() { j.sink.fail(bad, ferr) })
		if rest := cr.start + cr.count - bad - 1; rest > 0 {
			p.requeueLocked(j, bad+1, rest, &after)
		}
		cr.count = bad - cr.start
	}
	p.mu.Unlock()
	for _, f := range after {
		f()
	}

	if cr.count > 0 {
		c := driver.Chunk{Task: j.task, Start: j.base + cr.start, Count: cr.count, Args: args, StopOnError: j.stopOnErr}
		cr.finish(p.drv.r.Run(ctx, c, cr.deliver))
	}

	limit := p.inFlight() // outside p.mu: the backend's call
	p.mu.Lock()
	p.drv.limit = limit
	p.drv.running--
	delete(j.chunks, cr)
	p.pumpLocked()
	p.checkGoneLocked()
	p.mu.Unlock()
}

// deliver is the function a backend's Run calls per item.
func (cr *chunkRun) deliver(res driver.Result) bool {
	i := res.Index - cr.j.base - cr.start
	if i < 0 || i >= cr.count {
		return false
	}
	cr.mu.Lock()
	if cr.ended || cr.got[i/64]&(1<<(i%64)) != 0 {
		cr.mu.Unlock()
		return false
	}
	cr.got[i/64] |= 1 << (i % 64)
	cr.mu.Unlock()
	idx := cr.start + i
	switch {
	case res.Err == nil:
		cr.j.sink.value(idx, res.Value)
	case errors.Is(res.Err, driver.ErrSkipped):
		cr.j.sink.skip(idx, 1)
	default:
		cr.j.sink.fail(idx, res.Err)
	}
	return true
}

// finish settles the items Run returned without: skipped if the job no
// longer wants them, ErrTerminated after Terminate, else Run's error.
func (cr *chunkRun) finish(runErr error) {
	cr.mu.Lock()
	cr.ended = true
	cr.mu.Unlock()
	p, j := cr.p, cr.j
	p.mu.Lock()
	stopped, terminated := cr.stopped, p.state == stateTerminated
	p.mu.Unlock()
	for i := 0; i < cr.count; i++ {
		if cr.got[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		idx := cr.start + i
		switch {
		case stopped:
			j.sink.skip(idx, 1)
		case terminated:
			j.sink.fail(idx, ErrTerminated)
		case runErr == nil:
			j.sink.fail(idx, fmt.Errorf("pool: %s: %w", taskName(j.base+idx, j.single), errNoResult))
		default:
			j.sink.fail(idx, fmt.Errorf("pool: %s: %w", taskName(j.base+idx, j.single), runErr))
		}
	}
}

// stopChunksLocked cancels the chunks of j in a backend's Run whose items
// are all above threshold: the job wants none of them.
func (p *Pool) stopChunksLocked(j *job, threshold int) {
	for cr := range j.chunks {
		if cr.start > threshold {
			cr.stopped = true
			cr.cancel()
		}
	}
}

// checkBackendGoneLocked closes gone once a pool from Open is shut and
// nothing of it is queued or in Run, after closing (or terminating) its
// backend.
func (p *Pool) checkBackendGoneLocked() {
	if p.state == stateRunning || p.drv.running > 0 || p.hasWorkLocked() || p.isGone {
		return
	}
	p.isGone = true
	terminated := p.state == stateTerminated
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if terminated {
			p.drv.r.Terminate()
		} else {
			p.drv.r.Close()
		}
		p.drv.cancel()
		close(p.gone)
	}()
}

//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

const (
	modeMap       = iota // all results, or the lowest-index error
	modeOrdered          // Imap
	modeUnordered        // ImapUnordered
	modeOne              // Apply
)

// errSkipped is what an Imap item that was never run reports. It can only
// be seen after the iteration was cancelled, so callers never get it.
var errSkipped = errors.New("pool: task skipped")

type idxErr struct {
	idx int
	err error
}

// collector gathers one job's outcomes in the parent. Results are decoded
// straight into res by the reader goroutine of the worker that ran them
// (distinct indices, so no lock), then accounted under mu.
type collector[R any] struct {
	n        int
	mode     int
	rc       codec[R]
	p        *Pool
	j        *job
	onResult func(int, R)
	onError  func(int, error)
	progress func(int, int)
	onFinish func()

	// cbMu serialises accounting with the callbacks, so that every
	// callback has returned before the call that waits on done returns.
	cbMu sync.Mutex

	mu        sync.Mutex
	res       []R
	errs      map[int]error
	bits      []uint64  // accounted items
	order     []arrived // ImapUnordered: accounted items in arrival order
	ohead     int
	accounted int
	ndone     int
	prefix    int // modeMap: every item below prefix is accounted
	firstErr  int // modeMap: lowest failed index, -1 if none
	finished  bool
	sig       chan struct{} // pokes the Imap consumer
	done      chan struct{}
}

func newCollector[R any](p *Pool, n, mode int, co *callOptions, onResult func(int, R)) *collector[R] {
	c := &collector[R]{
		n: n, mode: mode, rc: newCodec[R](), p: p,
		onResult: onResult, onError: co.onError, progress: co.progress,
		res:      make([]R, n),
		bits:     make([]uint64, (n+63)/64),
		firstErr: -1,
		sig:      make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	return c
}

func (c *collector[R]) name(idx int) string { return taskName(idx, c.mode == modeOne) }

func (c *collector[R]) has(i int) bool { return c.bits[i/64]&(1<<(i%64)) != 0 }

var decPool = sync.Pool{New: func() any { return new(decState) }}

func (c *collector[R]) deliver(payload []byte, idx0, skip, k int) (int, int, error) {
	d := decPool.Get().(*decState)
	defer decPool.Put(d)
	d.reset(payload)
	for range skip {
		if err := skipRecord(d); err != nil {
			c.failRange(idx0, k, fmt.Errorf("pool: %s: corrupt result from the worker: %w", c.name(idx0), err))
			return d.p, 0, err
		}
	}
	ran := 0
	sts := make([]byte, k) // statusOK is 0
	var errs []idxErr
	for i := 0; i < k; i++ {
		idx := idx0 + i
		if c.rc.okRun != nil {
			m := c.rc.okRun(d, c.res[idx:idx0+k])
			ran += m
			if i, idx = i+m, idx+m; i == k {
				break
			}
		}
		st, err := d.byte1()
		if err == nil {
			switch st {
			case statusOK:
				if err = c.rc.dec(d, &c.res[idx]); err != nil {
					var zero R
					c.res[idx] = zero
				}
			case statusErr:
				var te *TaskError
				if te, err = readErrRecord(d, idx); err == nil {
					errs = append(errs, idxErr{idx, te})
				}
			case statusSkipped:
			default:
				err = fmt.Errorf("%w: record status %d", errProto, st)
			}
		}
		if err != nil {
			c.resolve(idx0, sts[:i], errs)
			c.failRange(idx, k-i, fmt.Errorf("pool: %s: corrupt result from the worker: %w", c.name(idx), err))
			return d.p, ran, err
		}
		sts[i] = st
		if st == statusOK {
			ran++
		}
	}
	c.resolve(idx0, sts, errs)
	return d.p, ran, nil
}

// value decodes item idx's result as a backend delivered it (pools from
// Open). The backend's chunk lets each index through once, so no other
// goroutine writes res[idx].
func (c *collector[R]) value(idx int, val []byte) {
	d := decPool.Get().(*decState)
	defer decPool.Put(d)
	d.reset(val)
	err := c.rc.dec(d, &c.res[idx])
	if err == nil && d.p != len(val) {
		err = fmt.Errorf("%d bytes after the value", len(val)-d.p)
	}
	if err != nil {
		var zero R
		c.res[idx] = zero
		c.fail(idx, fmt.Errorf("pool: %s: cannot decode the result: %w", c.name(idx), err))
		return
	}
	c.resolve(idx, []byte{statusOK}, nil)
}

func (c *collector[R]) fail(idx int, err error) {
	c.resolve(idx, []byte{statusErr}, []idxErr{{idx, err}})
}

func (c *collector[R]) failRange(start, count int, err error) {
	sts := make([]byte, count)
	errs := make([]idxErr, count)
	for i := range count {
		sts[i] = statusErr
		errs[i] = idxErr{start + i, err}
	}
	c.resolve(start, sts, errs)
}

func (c *collector[R]) skip(start, count int) {
	sts := make([]byte, count)
	for i := range sts {
		sts[i] = statusSkipped
	}
	c.resolve(start, sts, nil)
}

// resolve accounts items idx0.. with statuses sts (errs holds the errors
// of the failed ones), runs the callbacks, and finishes the call when its
// condition is met.
func (c *collector[R]) resolve(idx0 int, sts []byte, errs []idxErr) {
	c.cbMu.Lock()
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		c.cbMu.Unlock()
		return
	}
	stopAt := -1
	for i, st := range sts {
		idx := idx0 + i
		if c.has(idx) {
			continue // delivered once already; cannot happen, but harmless
		}
		c.bits[idx/64] |= 1 << (idx % 64)
		c.accounted++
		switch {
		case st != statusSkipped:
			c.ndone++
		case c.mode != modeMap:
			c.setErrLocked(idx, errSkipped)
		}
		if c.mode == modeUnordered {
			// A chunk's items arrive together: one span for them all.
			if k := len(c.order); k > c.ohead && c.order[k-1].end == idx {
				c.order[k-1].end++
			} else {
				c.order = append(c.order, arrived{idx, idx + 1})
			}
		}
	}
	for _, e := range errs {
		c.setErrLocked(e.idx, e.err)
		if c.mode == modeMap && (c.firstErr < 0 || e.idx < c.firstErr) {
			c.firstErr, stopAt = e.idx, e.idx
		}
	}
	if c.mode == modeMap {
		for c.prefix < c.n && c.has(c.prefix) {
			c.prefix++
		}
	}
	fin := c.accounted == c.n
	if c.mode == modeMap && c.firstErr >= 0 {
		fin = c.prefix >= c.firstErr
	}
	ndone := c.ndone
	c.finished = fin
	c.mu.Unlock()

	if c.onResult != nil || c.onError != nil {
		ei := 0
		for i, st := range sts {
			idx := idx0 + i
			switch {
			case st == statusOK && c.onResult != nil:
				c.onResult(idx, c.res[idx])
			case st == statusErr:
				for ei < len(errs) && errs[ei].idx < idx {
					ei++
				}
				if c.onError != nil && ei < len(errs) && errs[ei].idx == idx {
					c.onError(idx, errs[ei].err)
				}
			}
		}
	}
	if c.progress != nil {
		c.progress(ndone, c.n)
	}
	if fin {
		if c.onFinish != nil {
			c.onFinish()
		}
		close(c.done)
	}
	c.cbMu.Unlock()
	select {
	case c.sig <- struct{}{}:
	default:
	}
	if stopAt >= 0 {
		// Map: run nothing after the failed item that has not started, and
		// cancel what runs after it; items before it still run, and may
		// fail first. Once Map has its answer nothing more is needed.
		if fin {
			stopAt = -1
		}
		c.p.stopJob(c.j, stopAt)
	}
}

func (c *collector[R]) setErrLocked(idx int, err error) {
	if c.mode == modeOne {
		markSingle(err)
	}
	if c.errs == nil {
		c.errs = map[int]error{}
	}
	c.errs[idx] = err
}

// abandon stops the job because its caller no longer waits: the ctx ended,
// or the Imap loop was left early. Running tasks see their ctx cancelled.
func (c *collector[R]) abandon() {
	c.mu.Lock()
	was := c.finished
	c.finished = true
	c.mu.Unlock()
	if !was {
		c.p.stopJob(c.j, -1)
	}
}

// mapResult returns the results, or the error of the lowest failed index.
func (c *collector[R]) mapResult() ([]R, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstErr >= 0 {
		return nil, c.errs[c.firstErr]
	}
	return c.res, nil
}

// take removes item i's outcome once it is accounted.
func (c *collector[R]) takeLocked(i int) (R, error) {
	r := c.res[i]
	var zero R
	c.res[i] = zero
	err := c.errs[i]
	if err != nil {
		delete(c.errs, i)
	}
	return r, err
}

// arrived is the items start..end-1, accounted one after the other.
type arrived struct{ start, end int }

// outcome is one item's result or error, as Imap yields it.
type outcome[R any] struct {
	r   R
	err error
}

// maxBatch bounds the outcomes next takes at once.
const maxBatch = 4096

// next waits for the next outcomes in the call's order, from item i for
// Imap, the next to arrive for ImapUnordered, and appends all that are
// ready (at most maxBatch) to buf: one lock per batch rather than per
// item, which a map of a trivial task would feel. It returns false if ctx
// ends first.
func (c *collector[R]) next(ctx context.Context, i int, buf []outcome[R]) ([]outcome[R], bool) {
	for {
		c.mu.Lock()
		if c.mode == modeUnordered {
			for c.ohead < len(c.order) && len(buf) < maxBatch {
				sp := &c.order[c.ohead]
				for ; sp.start < sp.end && len(buf) < maxBatch; sp.start++ {
					r, err := c.takeLocked(sp.start)
					buf = append(buf, outcome[R]{r, err})
				}
				if sp.start == sp.end {
					c.ohead++
				}
			}
			if c.ohead == len(c.order) {
				c.order, c.ohead = c.order[:0], 0
			}
		} else {
			for ; i < c.n && c.has(i) && len(buf) < maxBatch; i++ {
				r, err := c.takeLocked(i)
				buf = append(buf, outcome[R]{r, err})
			}
		}
		c.mu.Unlock()
		if len(buf) > 0 {
			return buf, true
		}
		select {
		case <-c.sig:
		case <-ctx.Done():
			return buf, false
		}
	}
}

//go:build linux

package lock

import (
	"context"
	"fmt"
	"sync/atomic"
)

// A barrier segment has a short robust mutex, a futex word holding the
// generation and a broken flag (gen<<1 | broken), the arrival count of the
// current generation and the number of parties. When a generation ends,
// its outcome (passed, or broken by a timeout, Abort or Reset) is recorded
// in a ring of bits before the word moves on, so a waiter that wakes late,
// after the barrier was reset and reused, still learns how its own
// generation ended.
const (
	offBarMu      = 64
	offBarWord    = 128
	offBarCount   = 132
	offBarParties = 136
	offBarOutcome = 256
	outcomeBits   = 1024

	maxParties = 1<<31 - 1
)

// Barrier makes a fixed number of parties wait for each other (Python's
// multiprocessing.Barrier, without the action callable): each Wait blocks
// until Parties() waits are pending, then all return, each with a distinct
// arrival index 0..Parties()-1, and the barrier is ready for the next
// round.
//
// If any waiter's ctx ends, or Abort is called, the barrier breaks: every
// pending and future Wait fails with ErrBroken until Reset. This keeps one
// slow or failed party from leaving the others stuck, as in Python. A
// party that dies inside the barrier's bookkeeping breaks it too.
type Barrier struct {
	h       handle
	w       *atomic.Uint32
	parties int
}

// NewBarrier returns a barrier for parties parties (at least 1).
func NewBarrier(parties int) (*Barrier, error) {
	if parties < 1 || parties > maxParties {
		return nil, fmt.Errorf("lock: barrier parties %d out of range", parties)
	}
	c, err := create(kindBarrier, func(c *core) {
		c.u32(offBarParties).Store(uint32(parties))
	})
	if err != nil {
		return nil, err
	}
	b := &Barrier{}
	b.init(c)
	return b, nil
}

func (b *Barrier) init(c *core) {
	b.h = newHandle(c)
	b.w = c.u32(offBarWord)
	b.parties = max(int(c.u32(offBarParties).Load()), 1)
}

// lock takes the barrier's mutex; a party that died inside it breaks the
// barrier, since the round it was in can no longer complete as planned.
func (b *Barrier) lock(ctx context.Context) error {
	c := b.h.c
	mu := c.u32(offBarMu)
	if mu.CompareAndSwap(0, c.slot) {
		return nil
	}
	err := b.h.lockWord(ctx, mu, false, "wait")
	if err == ErrOwnerDied {
		b.breakLocked()
		return nil
	}
	return err
}

func (b *Barrier) unlock() { unlockWord(b.h.c.u32(offBarMu)) }

// breakLocked breaks the current generation (under the mutex).
func (b *Barrier) breakLocked() {
	if w := b.w.Load(); w&1 == 0 {
		b.h.c.u32(offBarCount).Store(0)
		b.w.Store(w | 1)
		wakeAll(b.w)
	}
}

func (b *Barrier) setOutcome(gen uint32, passed bool) {
	i := gen % outcomeBits
	word := b.h.c.u32(offBarOutcome + 4*int(i/32))
	bit := uint32(1) << (i % 32)
	if passed {
		word.Or(bit)
	} else {
		word.And(^bit)
	}
}

func (b *Barrier) passed(gen uint32) bool {
	i := gen % outcomeBits
	return b.h.c.u32(offBarOutcome+4*int(i/32)).Load()&(1<<(i%32)) != 0
}

// Wait blocks until all parties have called Wait, then returns this
// party's arrival index (the first to arrive gets 0, the last
// Parties()-1). It returns -1 and ErrBroken when the barrier is or becomes
// broken. When ctx ends first, Wait breaks the barrier for everyone and
// returns an error matching both ctx's error and ErrBroken.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	c := b.h.live()
	if c == nil {
		return -1, ErrClosed
	}
	if err := b.lock(ctx); err != nil {
		return -1, err
	}
	w := b.w.Load()
	if w&1 != 0 {
		b.unlock()
		return -1, ErrBroken
	}
	gen := w >> 1
	count := c.u32(offBarCount)
	idx := int(count.Load())
	raceRelease(c)
	if idx+1 >= b.parties {
		// Last to arrive: open the barrier for this generation.
		b.setOutcome(gen, true)
		count.Store(0)
		b.w.Store((gen + 1) << 1)
		b.unlock()
		wakeAll(b.w)
		raceAcquire(c)
		return idx, nil
	}
	count.Store(uint32(idx + 1))
	b.unlock()

	stop := wakeOnCancel(ctx, b.w)
	defer stop()
	for {
		w := b.w.Load()
		if w>>1 != gen {
			return b.ended(gen, idx)
		}
		if w&1 != 0 {
			return -1, ErrBroken
		}
		var waitErr error
		if b.h.closed.Load() {
			waitErr = ErrClosed
		} else if err := sleep(ctx, b.w, w, maxCheck); err != nil {
			waitErr = ctxError("barrier wait", err)
		}
		if waitErr == nil {
			continue
		}
		// Leaving early breaks the round for everyone, unless it has
		// just completed.
		if err := b.lock(context.Background()); err != nil {
			return -1, err
		}
		w = b.w.Load()
		if w>>1 != gen {
			b.unlock()
			return b.ended(gen, idx)
		}
		b.breakLocked()
		b.unlock()
		return -1, fmt.Errorf("%w (%w)", waitErr, ErrBroken)
	}
}

// ended reports how generation gen, which this waiter was in, ended.
func (b *Barrier) ended(gen uint32, idx int) (int, error) {
	if b.passed(gen) {
		raceAcquire(b.h.c)
		return idx, nil
	}
	return -1, ErrBroken
}

// Abort breaks the barrier: pending and future Waits fail with ErrBroken
// until Reset.
func (b *Barrier) Abort() error {
	if b.h.live() == nil {
		return ErrClosed
	}
	if err := b.lock(context.Background()); err != nil {
		return err
	}
	b.breakLocked()
	b.unlock()
	return nil
}

// Reset returns the barrier to its initial, empty state. Parties waiting
// at that moment fail with ErrBroken.
func (b *Barrier) Reset() error {
	c := b.h.live()
	if c == nil {
		return ErrClosed
	}
	if err := b.lock(context.Background()); err != nil {
		return err
	}
	w := b.w.Load()
	count := c.u32(offBarCount)
	if w&1 != 0 || count.Load() > 0 {
		gen := w >> 1
		b.setOutcome(gen, false)
		count.Store(0)
		b.w.Store((gen + 1) << 1)
		wakeAll(b.w)
	}
	b.unlock()
	return nil
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool {
	return b.h.live() != nil && b.w.Load()&1 != 0
}

// NWaiting returns the number of parties waiting now (Python's
// n_waiting).
func (b *Barrier) NWaiting() int {
	c := b.h.live()
	if c == nil || b.w.Load()&1 != 0 {
		return 0
	}
	return int(c.u32(offBarCount).Load())
}

// Parties returns the number of parties needed to pass the barrier.
func (b *Barrier) Parties() int { return b.parties }

// Close releases this handle. A second Close does nothing.
func (b *Barrier) Close() error { return b.h.close(b.w) }

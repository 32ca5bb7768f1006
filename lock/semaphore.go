//go:build linux

package lock

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/shm"
)

// A semaphore segment keeps the value and, per attached process, how many
// units that process holds, so that the units of a process that died can be
// given back. A short robust mutex (offSemMu) guards it all. The value is a
// cache of initial + extra - sum(held): if a process dies inside the mutex,
// the next locker recomputes it (repair), so no partial update can leak or
// mint units.
const (
	offSemMu      = 64
	offSemValue   = 128 // futex word: waiters sleep while it is 0
	offSemInitial = 132
	offSemExtra   = 136 // releases by processes holding nothing (unbounded only)
	offSemNWait   = 140 // sleepers, all processes
	offSemHWM     = 144 // entries ever used
	offSemEntries = 256

	semEntrySize = 16 // slot, held, waiting, unused
	maxSemValue  = 1<<31 - 1
)

var semEntries = (segSize(kindSemaphore) - offSemEntries) / semEntrySize

// Semaphore is a counting semaphore shared by processes (Python's
// multiprocessing.Semaphore). Acquire takes a unit, waiting while there is
// none; Release gives one back.
//
// Units are accounted to the process that took them: when a process dies
// (or closes its last handle) holding units, they come back, and the
// acquirer that finds them gets ErrOwnerDied. A Release by a process that
// holds no unit is allowed, as in Python: it settles a unit held by some
// other process (one process acquires, another releases for it), or, when
// no process holds any, adds a unit that belongs to whoever takes it (one
// process signals another; the consumer never releases, and its death
// gives nothing back).
type Semaphore struct {
	h handle
	w *atomic.Uint32 // the value
}

// NewSemaphore returns a semaphore with value n (n >= 0).
func NewSemaphore(n int) (*Semaphore, error) {
	c, err := newSemaphore(kindSemaphore, n)
	if err != nil {
		return nil, err
	}
	s := &Semaphore{}
	s.init(c)
	return s, nil
}

func newSemaphore(k kind, n int) (*core, error) {
	if n < 0 || n > maxSemValue {
		return nil, fmt.Errorf("lock: semaphore value %d out of range", n)
	}
	return create(k, func(c *core) {
		c.u32(offSemInitial).Store(uint32(n))
		c.u32(offSemValue).Store(uint32(n))
	})
}

func (s *Semaphore) init(c *core) {
	s.h = newHandle(c)
	s.w = c.u32(offSemValue)
}

func (s *Semaphore) entryWord(i, field int) *atomic.Uint32 {
	return s.h.c.u32(offSemEntries + i*semEntrySize + 4*field)
}

// lock takes the semaphore's mutex. A process that died inside it may have
// left the bookkeeping half-done: repair it.
func (s *Semaphore) lock(ctx context.Context) error {
	c := s.h.c
	mu := c.u32(offSemMu)
	if mu.CompareAndSwap(0, c.slot) {
		return nil
	}
	err := s.h.lockWord(ctx, mu, false, "acquire")
	if err == ErrOwnerDied {
		s.repair()
		return nil
	}
	return err
}

func (s *Semaphore) unlock() { unlockWord(s.h.c.u32(offSemMu)) }

func (s *Semaphore) repair() {
	c := s.h.c
	var held, waiting uint64
	hwm := min(int(c.u32(offSemHWM).Load()), semEntries)
	for i := range hwm {
		if s.entryWord(i, 0).Load() != 0 {
			held += uint64(s.entryWord(i, 1).Load())
			waiting += uint64(s.entryWord(i, 2).Load())
		}
	}
	v := int64(c.u32(offSemInitial).Load()) + int64(c.u32(offSemExtra).Load()) - int64(held)
	s.w.Store(uint32(max(v, 0)))
	c.u32(offSemNWait).Store(uint32(waiting))
}

// entry returns this process's entry, claiming one the first time (under
// the mutex).
func (s *Semaphore) entry() (int, error) {
	c := s.h.c
	if e := int(c.semEntry.Load()); e >= 0 && s.entryWord(e, 0).Load() == c.slot {
		return e, nil
	}
	hwm := min(int(c.u32(offSemHWM).Load()), semEntries)
	i := -1
	for j := range hwm {
		if s.entryWord(j, 0).Load() == 0 {
			i = j
			break
		}
	}
	if i < 0 && hwm < semEntries {
		i = hwm
		c.u32(offSemHWM).Store(uint32(hwm + 1))
	}
	if i < 0 {
		s.reclaimDead(true)
		for j := range hwm {
			if s.entryWord(j, 0).Load() == 0 {
				i = j
				break
			}
		}
	}
	if i < 0 {
		return -1, fmt.Errorf("lock: more than %d processes use this semaphore", semEntries)
	}
	s.entryWord(i, 1).Store(0)
	s.entryWord(i, 2).Store(0)
	s.entryWord(i, 0).Store(c.slot) // last: the entry exists from here on
	c.semEntry.Store(int32(i))
	return i, nil
}

// reclaimDead gives back the units of processes that are gone and frees
// their entries (all dead entries when all is set, else only those that
// hold or wait). It returns how many units came back. Under the mutex.
func (s *Semaphore) reclaimDead(all bool) int {
	c := s.h.c
	got := 0
	hwm := min(int(c.u32(offSemHWM).Load()), semEntries)
	for i := range hwm {
		slot := s.entryWord(i, 0).Load()
		if slot == 0 || slot == c.slot {
			continue
		}
		held, waiting := s.entryWord(i, 1).Load(), s.entryWord(i, 2).Load()
		if (held == 0 && waiting == 0 && !all) || c.alive(slot) {
			continue
		}
		s.w.Add(held)
		c.u32(offSemNWait).Add(-waiting)
		s.entryWord(i, 1).Store(0)
		s.entryWord(i, 2).Store(0)
		s.entryWord(i, 0).Store(0)
		got += int(held)
	}
	if got > 1 {
		// Several units came back: the caller takes one, others may be
		// asleep waiting for the rest.
		shm.Wake(s.w, got-1)
	}
	return got
}

// Acquire takes a unit, blocking until one is available or ctx ends. It
// returns nil, or ErrOwnerDied when the unit came from a process that died
// holding it; the unit is taken in both cases. When ctx ends first it
// returns ctx's error (wrapped) and takes nothing.
func (s *Semaphore) Acquire(ctx context.Context) error {
	c := s.h.live()
	if c == nil {
		return ErrClosed
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	e, err := s.entry()
	if err != nil {
		s.unlock()
		return err
	}
	if s.take(e) {
		s.unlock()
		return nil
	}
	s.entryWord(e, 2).Add(1)
	c.u32(offSemNWait).Add(1)
	s.unlock()

	stop := wakeOnCancel(ctx, s.w)
	defer stop()
	died := false
	interval := firstCheck
	nextCheck := time.Now().Add(interval)
	for {
		var waitErr error
		if s.h.closed.Load() {
			waitErr = ErrClosed
		} else if err := sleep(ctx, s.w, 0, time.Until(nextCheck)); err != nil {
			waitErr = ctxError("acquire", err)
		}
		// The mutex is held for a few stores only, so waiting for it
		// without ctx is bounded; it must be taken to leave the waiters
		// count right.
		if err := s.lock(context.Background()); err != nil {
			return err
		}
		if s.entryWord(e, 0).Load() != c.slot {
			// Our entry was taken from us: only when this process was
			// seen as detached, i.e. closed.
			s.unlock()
			return ErrClosed
		}
		if now := time.Now(); !now.Before(nextCheck) {
			if s.reclaimDead(false) > 0 {
				died = true
			}
			interval = min(2*interval, maxCheck)
			nextCheck = now.Add(interval)
		}
		if got := s.take(e); got || waitErr != nil {
			s.entryWord(e, 2).Add(^uint32(0))
			c.u32(offSemNWait).Add(^uint32(0))
			s.unlock()
			if !got {
				return waitErr
			}
			if died {
				return ErrOwnerDied
			}
			return nil
		}
		s.unlock()
	}
}

// take takes a unit for entry e if there is one. Under the mutex. A unit
// that a Release by a non-holder added (a signal) is taken first and is not
// accounted to e: it belongs to the taker, and does not come back if the
// taker dies, or a consumer that exits would hand its signals out again.
func (s *Semaphore) take(e int) bool {
	if s.w.Load() == 0 {
		return false
	}
	s.w.Add(^uint32(0))
	if extra := s.h.c.u32(offSemExtra); extra.Load() > 0 {
		extra.Add(^uint32(0))
	} else {
		s.entryWord(e, 1).Add(1)
	}
	raceAcquire(s.h.c)
	return true
}

// TryAcquire takes a unit if one is available now, or held by a process
// that died (then with ErrOwnerDied).
func (s *Semaphore) TryAcquire() (bool, error) {
	c := s.h.live()
	if c == nil {
		return false, ErrClosed
	}
	if err := s.lock(context.Background()); err != nil {
		return false, err
	}
	defer s.unlock()
	e, err := s.entry()
	if err != nil {
		return false, err
	}
	if s.take(e) {
		return true, nil
	}
	if s.reclaimDead(false) > 0 && s.take(e) {
		return true, ErrOwnerDied
	}
	return false, nil
}

// Release gives a unit back and wakes one waiter.
func (s *Semaphore) Release() error {
	c := s.h.live()
	if c == nil {
		return ErrClosed
	}
	if err := s.lock(context.Background()); err != nil {
		return err
	}
	e, err := s.entry()
	if err != nil {
		s.unlock()
		return err
	}
	raceRelease(c)
	if h := s.entryWord(e, 1); h.Load() > 0 {
		h.Add(^uint32(0))
	} else if k := s.otherHolder(e); k >= 0 {
		s.entryWord(k, 1).Add(^uint32(0))
	} else if c.kind == kindBoundedSemaphore {
		s.unlock()
		return ErrTooManyReleases
	} else if s.w.Load() >= maxSemValue {
		s.unlock()
		return fmt.Errorf("lock: semaphore value would exceed %d", maxSemValue)
	} else {
		c.u32(offSemExtra).Add(1)
	}
	s.w.Add(1)
	wake := c.u32(offSemNWait).Load() > 0
	s.unlock()
	if wake {
		shm.Wake(s.w, 1)
	}
	return nil
}

// otherHolder returns an entry other than e that holds a unit, or -1.
func (s *Semaphore) otherHolder(e int) int {
	hwm := min(int(s.h.c.u32(offSemHWM).Load()), semEntries)
	for i := range hwm {
		if i != e && s.entryWord(i, 0).Load() != 0 && s.entryWord(i, 1).Load() > 0 {
			return i
		}
	}
	return -1
}

// Value returns the number of units available now (Python's get_value).
func (s *Semaphore) Value() (int, error) {
	if s.h.live() == nil {
		return 0, ErrClosed
	}
	return int(s.w.Load()), nil
}

// Close releases this handle. Units this process still holds when it closes
// its last handle come back to the others, as after a death. A second
// Close does nothing.
func (s *Semaphore) Close() error { return s.h.close(s.w) }

// BoundedSemaphore is a Semaphore whose value never exceeds its initial
// value: a Release that would is ErrTooManyReleases (Python's
// multiprocessing.BoundedSemaphore).
type BoundedSemaphore struct {
	s Semaphore
}

// NewBoundedSemaphore returns a bounded semaphore with value n (n >= 0).
func NewBoundedSemaphore(n int) (*BoundedSemaphore, error) {
	c, err := newSemaphore(kindBoundedSemaphore, n)
	if err != nil {
		return nil, err
	}
	b := &BoundedSemaphore{}
	b.s.init(c)
	return b, nil
}

// Acquire is Semaphore.Acquire.
func (b *BoundedSemaphore) Acquire(ctx context.Context) error { return b.s.Acquire(ctx) }

// TryAcquire is Semaphore.TryAcquire.
func (b *BoundedSemaphore) TryAcquire() (bool, error) { return b.s.TryAcquire() }

// Release gives a unit back; ErrTooManyReleases when every unit is already
// back.
func (b *BoundedSemaphore) Release() error { return b.s.Release() }

// Value is Semaphore.Value.
func (b *BoundedSemaphore) Value() (int, error) { return b.s.Value() }

// Close is Semaphore.Close.
func (b *BoundedSemaphore) Close() error { return b.s.Close() }

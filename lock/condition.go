//go:build linux

package lock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// A condition segment is a table of waiter entries. A waiter fills an entry
// while it holds the lock (its process's slot, a sequence number for FIFO
// order, state waiting), releases the lock and sleeps on the entry's own
// futex word. Notify, which also holds the lock, marks the oldest waiting
// entries notified and wakes exactly those. Every change of an entry is one
// store made under the lock, so a process dying at any point leaves the
// table consistent; an entry whose process died is skipped and freed by the
// next Notify (or reclaimed when the table is full).
const (
	offCondSeq     = 64 // uint64
	offCondHWM     = 72
	offCondEntries = 128

	condEntrySize = 16 // state, slot, seq (uint64)

	entryFree     = 0
	entryWaiting  = 1
	entryNotified = 2
)

var condEntries = (segSize(kindCondition) - offCondEntries) / condEntrySize

// Condition is a condition variable shared by processes (Python's
// multiprocessing.Condition), bound to a Lock. Wait, WaitFor and Notify
// must be called holding the lock (by this process), or they return
// ErrNotOwner. Notify(n) wakes exactly n waiters (fewer if fewer wait), in
// the order they started waiting.
//
// A Condition can be passed to a child process like the other types; its
// Lock comes along, and a child that also receives the Lock itself finds
// the same lock in both.
type Condition struct {
	h handle // the table
	l *Lock  // this Condition's own handle on the lock
}

// NewCondition returns a Condition using l, or a new Lock when l is nil.
// (Python's default is an RLock; Go's sync.Cond, like this one, takes a
// plain lock.) Closing the Condition does not close l.
func NewCondition(l *Lock) (*Condition, error) {
	var lh *Lock
	if l == nil {
		var err error
		if lh, err = NewLock(); err != nil {
			return nil, err
		}
	} else {
		c := l.h.live()
		if c == nil {
			return nil, ErrClosed
		}
		c.ref()
		lh = newLockHandle(c)
	}
	c, err := create(kindCondition, nil)
	if err != nil {
		lh.Close()
		return nil, err
	}
	cv := &Condition{}
	cv.init(lh, c)
	return cv, nil
}

func (cv *Condition) init(l *Lock, c *core) {
	cv.h = newHandle(c)
	cv.l = l
}

func (cv *Condition) entryWord(i, field int) *atomic.Uint32 {
	return cv.h.c.u32(offCondEntries + i*condEntrySize + 4*field)
}

func (cv *Condition) entrySeq(i int) *atomic.Uint64 {
	return cv.h.c.u64(offCondEntries + i*condEntrySize + 8)
}

// Acquire acquires the underlying lock (see Lock.Acquire).
func (cv *Condition) Acquire(ctx context.Context) error {
	if cv.l == nil {
		return ErrClosed
	}
	return cv.l.Acquire(ctx)
}

// TryAcquire tries the underlying lock (see Lock.TryAcquire).
func (cv *Condition) TryAcquire() (bool, error) {
	if cv.l == nil {
		return false, ErrClosed
	}
	return cv.l.TryAcquire()
}

// Release releases the underlying lock; ErrNotOwner if this process does
// not hold it.
func (cv *Condition) Release() error {
	if err := cv.check(); err != nil {
		return err
	}
	return cv.l.Release()
}

// Lock acquires the underlying lock, for sync.Locker.
func (cv *Condition) Lock() {
	if cv.l == nil {
		panic(ErrClosed)
	}
	cv.l.Lock()
}

// Unlock releases the underlying lock, for sync.Locker; it panics when this
// process does not hold it.
func (cv *Condition) Unlock() {
	if err := cv.Release(); err != nil {
		panic(err)
	}
}

func (cv *Condition) check() error {
	if cv.h.live() == nil || cv.l == nil || cv.l.h.live() == nil {
		return ErrClosed
	}
	if !cv.l.heldHere() {
		return ErrNotOwner
	}
	return nil
}

// Wait releases the lock, sleeps until a Notify picks this waiter or ctx
// ends, and acquires the lock again. It always returns holding the lock,
// also when ctx ended (then with ctx's error, wrapped), unless it returned
// ErrNotOwner or ErrClosed at the start. A waiter that was notified returns
// nil even if ctx ended meanwhile: the notification is not lost. If the
// lock's holder died while this waiter slept, Wait returns ErrOwnerDied
// (alone or joined with ctx's error).
func (cv *Condition) Wait(ctx context.Context) error {
	if err := cv.check(); err != nil {
		return err
	}
	waitErr, died, err := cv.wait(ctx)
	switch {
	case err != nil:
		return err
	case died && waitErr != nil:
		return errors.Join(waitErr, ErrOwnerDied)
	case died:
		return ErrOwnerDied
	}
	return waitErr
}

// wait is Wait after the owner check. waitErr is the ctx error (nil when
// notified), died reports an ErrOwnerDied from re-acquiring the lock, and
// err an error that left the lock not held.
func (cv *Condition) wait(ctx context.Context) (waitErr error, died bool, err error) {
	c := cv.h.c
	i, err := cv.claim()
	if err != nil {
		return nil, false, err
	}
	state := cv.entryWord(i, 0)
	if err := cv.l.Release(); err != nil {
		state.Store(entryFree)
		return nil, false, err
	}
	stop := wakeOnCancel(ctx, state)
	for state.Load() == entryWaiting {
		if cv.h.closed.Load() {
			waitErr = ErrClosed
			break
		}
		if err := sleep(ctx, state, entryWaiting, maxCheck); err != nil {
			waitErr = ctxError("wait", err)
			break
		}
	}
	stop()
	lerr := cv.l.Acquire(context.Background())
	if lerr != nil && lerr != ErrOwnerDied {
		return nil, false, lerr
	}
	if state.Load() == entryNotified {
		waitErr = nil // the notification counts, even if ctx ended too
	}
	if cv.entryWord(i, 1).Load() == c.slot {
		state.Store(entryFree)
	}
	return waitErr, lerr == ErrOwnerDied, nil
}

// WaitFor waits until pred returns true, calling it with the lock held
// before each Wait. It returns nil when pred is true, or ctx's error
// (wrapped) when ctx ends first; it always returns holding the lock
// (unless the lock was not held to begin with: ErrNotOwner). If a holder of
// the lock died while WaitFor slept, it returns ErrOwnerDied once pred is
// true: pred may have looked at state the dead process left half-updated.
func (cv *Condition) WaitFor(ctx context.Context, pred func() bool) error {
	if err := cv.check(); err != nil {
		return err
	}
	var died error
	for !pred() {
		if err := ctx.Err(); err != nil {
			return errors.Join(ctxError("wait", err), died)
		}
		waitErr, d, err := cv.wait(ctx)
		if err != nil {
			return err
		}
		if d {
			died = ErrOwnerDied
		}
		if waitErr != nil {
			if pred() {
				return died
			}
			return errors.Join(waitErr, died)
		}
	}
	return died
}

// claim fills a free entry for this process. Under the lock.
func (cv *Condition) claim() (int, error) {
	c := cv.h.c
	hwm := min(int(c.u32(offCondHWM).Load()), condEntries)
	i := cv.freeEntry(hwm)
	if i < 0 && hwm < condEntries {
		i = hwm
		c.u32(offCondHWM).Store(uint32(hwm + 1))
	}
	if i < 0 {
		for j := range hwm {
			if s := cv.entryWord(j, 1).Load(); cv.entryWord(j, 0).Load() != entryFree && !c.alive(s) {
				cv.entryWord(j, 0).Store(entryFree)
			}
		}
		i = cv.freeEntry(hwm)
	}
	if i < 0 {
		return -1, fmt.Errorf("lock: more than %d waiters on one Condition", condEntries)
	}
	seq := c.u64(offCondSeq)
	cv.entrySeq(i).Store(seq.Load())
	seq.Add(1)
	cv.entryWord(i, 1).Store(c.slot)
	cv.entryWord(i, 0).Store(entryWaiting)
	return i, nil
}

func (cv *Condition) freeEntry(hwm int) int {
	for j := range hwm {
		if cv.entryWord(j, 0).Load() == entryFree {
			return j
		}
	}
	return -1
}

// Notify wakes up to n waiters, the longest-waiting first. ErrNotOwner if
// this process does not hold the lock.
func (cv *Condition) Notify(n int) error {
	if err := cv.check(); err != nil {
		return err
	}
	c := cv.h.c
	hwm := min(int(c.u32(offCondHWM).Load()), condEntries)
	for n > 0 {
		best, bestSeq := -1, uint64(math.MaxUint64)
		for j := range hwm {
			if cv.entryWord(j, 0).Load() == entryWaiting {
				if s := cv.entrySeq(j).Load(); s < bestSeq {
					best, bestSeq = j, s
				}
			}
		}
		if best < 0 {
			return nil
		}
		state := cv.entryWord(best, 0)
		if !c.alive(cv.entryWord(best, 1).Load()) {
			state.Store(entryFree) // its process died waiting
			continue
		}
		state.Store(entryNotified)
		wakeAll(state)
		n--
	}
	return nil
}

// NotifyAll wakes every waiter. ErrNotOwner if this process does not hold
// the lock.
func (cv *Condition) NotifyAll() error { return cv.Notify(math.MaxInt) }

// Close releases this Condition's handles (its table and its own handle on
// the lock; a Lock passed to NewCondition stays open). A second Close does
// nothing.
func (cv *Condition) Close() error {
	err := cv.h.close()
	if cv.l != nil {
		if lerr := cv.l.Close(); err == nil {
			err = lerr
		}
	}
	return err
}

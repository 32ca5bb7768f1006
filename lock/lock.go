//go:build linux

package lock

import (
	"context"
	"errors"
	"sync/atomic"
)

// offMutex is the mutex word of a Lock or RLock, on its own cache line.
const offMutex = 64

// Lock is a mutual-exclusion lock shared by processes (Python's
// multiprocessing.Lock). It is not re-entrant, and, as in Python, any
// process may release it, not only the one that acquired it.
//
// A holder that dies, SIGKILL included, does not leave it held: the next
// acquirer gets it with ErrOwnerDied.
//
// A Lock is safe for concurrent use by goroutines and can be passed to a
// child process inside the process argument; the copy there works on the
// same lock. Its zero value is not usable: call NewLock.
type Lock struct {
	h handle
	w *atomic.Uint32
}

// NewLock returns a new, unlocked Lock.
func NewLock() (*Lock, error) {
	c, err := create(kindLock, nil)
	if err != nil {
		return nil, err
	}
	return newLockHandle(c), nil
}

func newLockHandle(c *core) *Lock {
	return &Lock{h: newHandle(c), w: c.u32(offMutex)}
}

// Acquire blocks until it holds the lock or ctx ends. It returns nil, or
// ErrOwnerDied when the previous holder died holding it: the lock is held in
// both cases. When ctx ends first it returns ctx's error (wrapped) and the
// lock is not held; if the lock is free, Acquire takes it even when ctx has
// already ended, as x/sync's semaphore does.
func (l *Lock) Acquire(ctx context.Context) error {
	c := l.h.live()
	if c == nil {
		return ErrClosed
	}
	if l.w.CompareAndSwap(0, c.slot) {
		raceAcquire(c)
		return nil
	}
	err := l.h.lockWord(ctx, l.w, true, "acquire")
	if err == nil || err == ErrOwnerDied {
		raceAcquire(c)
	}
	return err
}

// TryAcquire takes the lock if that needs no waiting. It reports whether it
// did; the error is ErrOwnerDied (with true: held) when the holder it found
// had died, or ErrClosed.
func (l *Lock) TryAcquire() (bool, error) {
	c := l.h.live()
	if c == nil {
		return false, ErrClosed
	}
	if l.w.CompareAndSwap(0, c.slot) {
		raceAcquire(c)
		return true, nil
	}
	ok, err := l.h.tryLockWord(l.w)
	if ok {
		raceAcquire(c)
	}
	return ok, err
}

// Release unlocks the lock. Any process may release it (Python's rule);
// releasing an unlocked Lock is ErrTooManyReleases.
func (l *Lock) Release() error {
	c := l.h.live()
	if c == nil {
		return ErrClosed
	}
	raceRelease(c)
	if unlockWord(l.w) == 0 {
		return ErrTooManyReleases
	}
	return nil
}

// Lock acquires the lock, for sync.Locker. A dead previous holder is not
// reported (use Acquire to learn of it); it panics if the Lock is closed.
func (l *Lock) Lock() {
	if err := l.Acquire(context.Background()); err != nil && err != ErrOwnerDied {
		panic(err)
	}
}

// Unlock releases the lock, for sync.Locker. Like sync.Mutex.Unlock, it
// panics when the lock is not locked (or closed).
func (l *Lock) Unlock() {
	if err := l.Release(); err != nil {
		panic(err)
	}
}

// heldHere reports whether this process holds the lock.
func (l *Lock) heldHere() bool {
	c := l.h.live()
	return c != nil && l.w.Load()&slotMask == c.slot
}

// Close releases this handle. Closing the last handle of the lock in a
// process detaches the process: if it still holds the lock, the next
// acquirer gets it with ErrOwnerDied, as after a death. A second Close
// does nothing.
func (l *Lock) Close() error { return l.h.close(l.w) }

// RLock is a re-entrant lock shared by processes (Python's
// multiprocessing.RLock). Its owner is the process that holds it: that
// process may acquire it again (and must release it as many times), and a
// Release from any other process is ErrNotOwner. See the package
// documentation for why the owner is a process and not a goroutine.
//
// A holder that dies does not leave it held: the next acquirer gets it, at
// depth one, with ErrOwnerDied.
type RLock struct {
	h handle
	w *atomic.Uint32
}

// NewRLock returns a new, unlocked RLock.
func NewRLock() (*RLock, error) {
	c, err := create(kindRLock, nil)
	if err != nil {
		return nil, err
	}
	return newRLockHandle(c), nil
}

func newRLockHandle(c *core) *RLock {
	return &RLock{h: newHandle(c), w: c.u32(offMutex)}
}

// Acquire blocks until this process holds the lock, or ctx ends. If this
// process already holds it, Acquire only counts one more level. It returns
// nil or ErrOwnerDied holding the lock, or ctx's error (wrapped) without
// it.
func (r *RLock) Acquire(ctx context.Context) error {
	c := r.h.live()
	if c == nil {
		return ErrClosed
	}
	// Fast path: count a level, or take a free word while no goroutine of
	// this process is in the slow path (one that enters the gate after us
	// re-checks the count under rmu, so it re-enters instead of sleeping).
	c.rmu.Lock()
	if c.rcount > 0 || (len(c.gate) == 0 && r.w.CompareAndSwap(0, c.slot)) {
		c.rcount++
		c.rmu.Unlock()
		raceAcquire(c)
		return nil
	}
	c.rmu.Unlock()
	// The gate lets one goroutine of this process at a time take the word,
	// so the count and the word change together and no goroutine of the
	// owner process ever sleeps on a word its own process holds.
	if err := r.h.enterGate(ctx, "acquire"); err != nil {
		return err
	}
	defer r.h.leaveGate()
	if r.enter() {
		return nil
	}
	var err error
	if !r.w.CompareAndSwap(0, c.slot) {
		err = r.h.lockWord(ctx, r.w, false, "acquire")
		if err != nil && err != ErrOwnerDied {
			return err
		}
	}
	r.setHeld(c)
	return err
}

// enter counts one more level if this process holds the lock. The count
// only drops to zero under rmu, together with the release of the word, so
// a count above zero means the word is ours.
func (r *RLock) enter() bool {
	c := r.h.c
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rcount == 0 {
		return false
	}
	c.rcount++
	raceAcquire(c)
	return true
}

func (r *RLock) setHeld(c *core) {
	c.rmu.Lock()
	c.rcount = 1
	c.rmu.Unlock()
	raceAcquire(c)
}

// TryAcquire takes the lock, or one more level of it, if that needs no
// waiting. The error is ErrOwnerDied (with true) when the holder it found
// had died.
func (r *RLock) TryAcquire() (bool, error) {
	c := r.h.live()
	if c == nil {
		return false, ErrClosed
	}
	if r.enter() {
		return true, nil
	}
	select {
	case c.gate <- struct{}{}:
	default:
		return false, nil // another goroutine here is waiting for it
	}
	defer r.h.leaveGate()
	if r.enter() {
		return true, nil
	}
	ok, err := r.h.tryLockWord(r.w)
	if ok {
		r.setHeld(c)
	}
	return ok, err
}

// Release releases one level; the last one unlocks. ErrNotOwner when this
// process does not hold the lock.
func (r *RLock) Release() error {
	c := r.h.live()
	if c == nil {
		return ErrClosed
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rcount == 0 || r.w.Load()&slotMask != c.slot {
		return ErrNotOwner
	}
	raceRelease(c)
	c.rcount--
	if c.rcount == 0 {
		unlockWord(r.w)
	}
	return nil
}

// Lock acquires the lock, for sync.Locker; it panics if the RLock is
// closed.
func (r *RLock) Lock() {
	if err := r.Acquire(context.Background()); err != nil && !errors.Is(err, ErrOwnerDied) {
		panic(err)
	}
}

// Unlock releases one level, for sync.Locker; it panics when this process
// does not hold the lock.
func (r *RLock) Unlock() {
	if err := r.Release(); err != nil {
		panic(err)
	}
}

// Close releases this handle. Closing the last handle of the lock in a
// process while holding it counts as dying with it. A second Close does
// nothing.
func (r *RLock) Close() error { return r.h.close(r.w) }

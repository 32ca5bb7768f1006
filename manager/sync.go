//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// The synchronisation proxies hold their state in the server, so they
// work between processes on different machines. Ownership (RLock,
// Condition, and the dead-holder check of every lock) is per connection:
// the goroutines of one process that share a Manager count as one owner.

// acquire runs Acquire; ErrOwnerDied comes back as a success code.
func acquire(ctx context.Context, p *proxy) error {
	rep, _, err := p.call(ctx, opAcquire, 0, blocking, nil)
	if err != nil {
		return err
	}
	if rep.code == codeOwnerDied {
		return ErrOwnerDied
	}
	return nil
}

func tryAcquire(ctx context.Context, p *proxy) (bool, error) {
	rep, _, err := p.call(ctx, opTryAcquire, 0, plain, nil)
	if err != nil {
		return false, err
	}
	ok, err := decodeBool(rep)
	if err == nil && rep.code == codeOwnerDied {
		err = ErrOwnerDied
	}
	return ok, err
}

func release(ctx context.Context, p *proxy) error {
	return noResult(p.call(ctx, opUnlock, 0, plain, nil))
}

// lockPanic is sync.Locker's way out: Lock and Unlock cannot return an
// error, and going on unlocked would be worse.
func lockPanic(what string, err error) {
	panic(fmt.Sprintf("manager: %s: %v", what, err))
}

// Lock is a proxy to a mutex held by the server, Python's manager.Lock().
// Any process may release it, as in Python. If the connection of the
// process holding it closes (the process died), the lock is released and
// the next Acquire reports ErrOwnerDied.
type Lock struct{ p *proxy }

// NewLock creates an unlocked Lock (or, with Named, finds one).
func NewLock(ctx context.Context, m *Manager, opts ...ObjectOption) (*Lock, error) {
	p, err := m.create(ctx, kindLock, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &Lock{p}, nil
}

// Acquire waits for the lock. It returns ctx's error if ctx ends first
// (the lock is then not held), and ErrOwnerDied when it got a lock whose
// holder died holding it (the lock is then held).
func (l *Lock) Acquire(ctx context.Context) error { return acquire(ctx, l.p) }

// TryAcquire takes the lock if it is free and reports whether it did.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) { return tryAcquire(ctx, l.p) }

// Release unlocks; an unlocked Lock gives ErrTooManyReleases.
func (l *Lock) Release(ctx context.Context) error { return release(ctx, l.p) }

// Lock is Acquire without a deadline, for sync.Locker. It panics if the
// server cannot be reached.
func (l *Lock) Lock() {
	if err := l.Acquire(context.Background()); err != nil && !errors.Is(err, ErrOwnerDied) {
		lockPanic("Lock", err)
	}
}

// Unlock is Release for sync.Locker. It panics on error.
func (l *Lock) Unlock() {
	if err := l.Release(context.Background()); err != nil {
		lockPanic("Unlock", err)
	}
}

// Close drops this proxy's reference (a held lock stays held). Idempotent.
func (l *Lock) Close() error { return l.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (l *Lock) EncodeMsgpack(enc *msgpack.Encoder) error { return l.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (l *Lock) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	l.p, err = decodeProxy(dec, kindLock)
	return err
}

// RLock is a proxy to a reentrant lock, Python's manager.RLock(): the
// owning process may acquire it again, and must release it as often.
// Release from another process is ErrNotOwner.
type RLock struct{ p *proxy }

// NewRLock creates an unlocked RLock (or, with Named, finds one).
func NewRLock(ctx context.Context, m *Manager, opts ...ObjectOption) (*RLock, error) {
	p, err := m.create(ctx, kindRLock, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &RLock{p}, nil
}

// Acquire waits for the lock (see Lock.Acquire).
func (l *RLock) Acquire(ctx context.Context) error { return acquire(ctx, l.p) }

// TryAcquire takes the lock if it is free or already this process's.
func (l *RLock) TryAcquire(ctx context.Context) (bool, error) { return tryAcquire(ctx, l.p) }

// Release undoes one Acquire (ErrNotOwner if this process does not hold
// it).
func (l *RLock) Release(ctx context.Context) error { return release(ctx, l.p) }

// Lock is Acquire for sync.Locker; it panics if the server cannot be
// reached.
func (l *RLock) Lock() {
	if err := l.Acquire(context.Background()); err != nil && !errors.Is(err, ErrOwnerDied) {
		lockPanic("Lock", err)
	}
}

// Unlock is Release for sync.Locker; it panics on error.
func (l *RLock) Unlock() {
	if err := l.Release(context.Background()); err != nil {
		lockPanic("Unlock", err)
	}
}

// Close drops this proxy's reference. Idempotent.
func (l *RLock) Close() error { return l.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (l *RLock) EncodeMsgpack(enc *msgpack.Encoder) error { return l.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (l *RLock) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	l.p, err = decodeProxy(dec, kindRLock)
	return err
}

// Semaphore is a proxy to a counting semaphore, Python's
// manager.Semaphore().
type Semaphore struct{ p *proxy }

// NewSemaphore creates a semaphore with value n (or, with Named, finds
// one).
func NewSemaphore(ctx context.Context, m *Manager, n int, opts ...ObjectOption) (*Semaphore, error) {
	p, err := newSemaphore(ctx, m, kindSemaphore, n, opts)
	if err != nil {
		return nil, err
	}
	return &Semaphore{p}, nil
}

func newSemaphore(ctx context.Context, m *Manager, k kind, n int, opts []ObjectOption) (*proxy, error) {
	if n < 0 {
		return nil, fmt.Errorf("manager: new %s: value %d < 0", k, n)
	}
	return m.create(ctx, k, opts, "", values(n))
}

// Acquire waits until the value is positive and decrements it. It returns
// ctx's error if ctx ends first.
func (s *Semaphore) Acquire(ctx context.Context) error { return acquire(ctx, s.p) }

// TryAcquire decrements a positive value and reports whether it did.
func (s *Semaphore) TryAcquire(ctx context.Context) (bool, error) { return tryAcquire(ctx, s.p) }

// Release increments the value (or wakes a waiter).
func (s *Semaphore) Release(ctx context.Context) error { return release(ctx, s.p) }

// Value returns the current value.
func (s *Semaphore) Value(ctx context.Context) (int, error) {
	rep, _, err := s.p.call(ctx, opSemValue, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Close drops this proxy's reference. Idempotent.
func (s *Semaphore) Close() error { return s.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (s *Semaphore) EncodeMsgpack(enc *msgpack.Encoder) error { return s.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (s *Semaphore) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	s.p, err = decodeProxy(dec, kindSemaphore)
	return err
}

// BoundedSemaphore is a Semaphore whose Release above the initial value is
// ErrTooManyReleases, Python's manager.BoundedSemaphore().
type BoundedSemaphore struct{ Semaphore }

// NewBoundedSemaphore creates a bounded semaphore with value n (or, with
// Named, finds one).
func NewBoundedSemaphore(ctx context.Context, m *Manager, n int, opts ...ObjectOption) (*BoundedSemaphore, error) {
	p, err := newSemaphore(ctx, m, kindBoundedSemaphore, n, opts)
	if err != nil {
		return nil, err
	}
	return &BoundedSemaphore{Semaphore{p}}, nil
}

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (s *BoundedSemaphore) EncodeMsgpack(enc *msgpack.Encoder) error { return s.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (s *BoundedSemaphore) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	s.p, err = decodeProxy(dec, kindBoundedSemaphore)
	return err
}

// Condition is a proxy to a condition variable, Python's
// manager.Condition(). Wait and Notify need its lock held by this
// process (ErrNotOwner otherwise).
type Condition struct{ p *proxy }

// NewCondition creates a condition variable over l, a Lock of the same
// manager, or over a new Lock when l is nil (or, with Named, finds one).
func NewCondition(ctx context.Context, m *Manager, l *Lock, opts ...ObjectOption) (*Condition, error) {
	var lockID uint64
	if l != nil {
		if l.p == nil || l.p.ref.server != m.cl.serverID {
			return nil, fmt.Errorf("manager: new Condition: the lock belongs to another manager")
		}
		if _, err := l.p.client(ctx); err != nil {
			return nil, err
		}
		lockID = l.p.ref.id
	}
	p, err := m.create(ctx, kindCondition, opts, "", values(lockID))
	if err != nil {
		return nil, err
	}
	return &Condition{p}, nil
}

// Acquire acquires the condition's lock (see Lock.Acquire).
func (c *Condition) Acquire(ctx context.Context) error { return acquire(ctx, c.p) }

// TryAcquire takes the condition's lock if it is free.
func (c *Condition) TryAcquire(ctx context.Context) (bool, error) { return tryAcquire(ctx, c.p) }

// Release releases the condition's lock.
func (c *Condition) Release(ctx context.Context) error { return release(ctx, c.p) }

// Lock is Acquire for sync.Locker; it panics if the server cannot be
// reached.
func (c *Condition) Lock() {
	if err := c.Acquire(context.Background()); err != nil && !errors.Is(err, ErrOwnerDied) {
		lockPanic("Lock", err)
	}
}

// Unlock is Release for sync.Locker; it panics on error.
func (c *Condition) Unlock() {
	if err := c.Release(context.Background()); err != nil {
		lockPanic("Unlock", err)
	}
}

// Wait releases the lock, waits for a Notify, and takes the lock back
// before it returns, also when ctx ended first (it then returns ctx's
// error, holding the lock, as Python's wait(timeout) does).
func (c *Condition) Wait(ctx context.Context) error {
	return noResult(c.p.call(ctx, opWait, 0, mustReturn, nil))
}

// WaitFor waits until pred returns true, checking it first and after each
// wakeup, with the lock held; it returns ctx's error (holding the lock) if
// ctx ends first.
func (c *Condition) WaitFor(ctx context.Context, pred func() bool) error {
	for !pred() {
		if err := c.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Notify wakes up to n waiters.
func (c *Condition) Notify(ctx context.Context, n int) error {
	return noResult(c.p.call(ctx, opNotify, 1, plain, values(n)))
}

// NotifyAll wakes every waiter.
func (c *Condition) NotifyAll(ctx context.Context) error { return c.Notify(ctx, -1) }

// Close drops this proxy's reference. Idempotent.
func (c *Condition) Close() error { return c.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (c *Condition) EncodeMsgpack(enc *msgpack.Encoder) error { return c.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (c *Condition) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	c.p, err = decodeProxy(dec, kindCondition)
	return err
}

// Event is a proxy to an event flag, Python's manager.Event().
type Event struct{ p *proxy }

// NewEvent creates a clear Event (or, with Named, finds one).
func NewEvent(ctx context.Context, m *Manager, opts ...ObjectOption) (*Event, error) {
	p, err := m.create(ctx, kindEvent, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &Event{p}, nil
}

// Set sets the flag and wakes every waiter.
func (e *Event) Set(ctx context.Context) error { return noResult(e.p.call(ctx, opSet, 0, plain, nil)) }

// Clear clears the flag.
func (e *Event) Clear(ctx context.Context) error {
	return noResult(e.p.call(ctx, opClear, 0, plain, nil))
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet(ctx context.Context) (bool, error) {
	rep, _, err := e.p.call(ctx, opIsSet, 0, plain, nil)
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Wait waits until the flag is set. It returns ctx's error if ctx ends
// first.
func (e *Event) Wait(ctx context.Context) error {
	return noResult(e.p.call(ctx, opWait, 0, blocking, nil))
}

// Close drops this proxy's reference. Idempotent.
func (e *Event) Close() error { return e.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (e *Event) EncodeMsgpack(enc *msgpack.Encoder) error { return e.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (e *Event) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	e.p, err = decodeProxy(dec, kindEvent)
	return err
}

// Barrier is a proxy to a barrier for a fixed number of parties, Python's
// manager.Barrier().
type Barrier struct{ p *proxy }

// NewBarrier creates a barrier for parties waiters (or, with Named, finds
// one).
func NewBarrier(ctx context.Context, m *Manager, parties int, opts ...ObjectOption) (*Barrier, error) {
	if parties < 1 {
		return nil, fmt.Errorf("manager: new Barrier: parties %d < 1", parties)
	}
	p, err := m.create(ctx, kindBarrier, opts, "", values(parties))
	if err != nil {
		return nil, err
	}
	return &Barrier{p}, nil
}

// Wait waits until all parties are waiting, then releases them all; each
// gets a distinct index in 0..parties-1 (arrival order). A broken barrier
// gives ErrBroken. When ctx ends first the barrier breaks for every party,
// as a Python timeout does: this call returns ctx's error, the others
// ErrBroken.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	rep, _, err := b.p.call(ctx, opWait, 0, blocking, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Abort breaks the barrier: waiters and later Waits get ErrBroken until
// Reset.
func (b *Barrier) Abort(ctx context.Context) error {
	return noResult(b.p.call(ctx, opAbort, 0, plain, nil))
}

// Reset returns the barrier to its initial state; current waiters get
// ErrBroken.
func (b *Barrier) Reset(ctx context.Context) error {
	return noResult(b.p.call(ctx, opReset, 0, plain, nil))
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken(ctx context.Context) (bool, error) {
	rep, _, err := b.p.call(ctx, opBroken, 0, plain, nil)
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// NWaiting returns the number of parties waiting.
func (b *Barrier) NWaiting(ctx context.Context) (int, error) {
	rep, _, err := b.p.call(ctx, opNWaiting, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Parties returns the number of parties.
func (b *Barrier) Parties(ctx context.Context) (int, error) {
	rep, _, err := b.p.call(ctx, opParties, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Close drops this proxy's reference. Idempotent.
func (b *Barrier) Close() error { return b.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (b *Barrier) EncodeMsgpack(enc *msgpack.Encoder) error { return b.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (b *Barrier) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	b.p, err = decodeProxy(dec, kindBarrier)
	return err
}

//go:build linux

package lock

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/shm"
)

// A mutex word is 0 when free, and otherwise the holder's slot, with
// waitersBit set once someone may be sleeping on it (Drepper's "mutex2" from
// "Futexes are tricky", with the owner in the word). The owner in the word
// is what makes it robust: a waiter that has slept for a while asks the
// kernel whether that slot is still attached (core.alive) and, if not, takes
// the word over with one compare-and-swap, so that of several waiters that
// noticed the death exactly one wins.
//
// The holder's death never wakes anybody, so every sleep is bounded: the
// first liveness check comes after firstCheck of sleeping, then the
// interval doubles up to maxCheck. The check is a system call, so it is
// never made while the word keeps changing hands normally.
const (
	spinTries  = 100
	firstCheck = 2 * time.Millisecond
	maxCheck   = 64 * time.Millisecond
)

// handle is what every exported type holds: the shared core plus its own
// closed state (a second Close is a no-op; a closed handle fails with
// ErrClosed while other handles of the object keep working).
type handle struct {
	c      *core
	closed atomic.Bool
	done   chan struct{} // closed by Close, ends waits of this handle
}

func newHandle(c *core) handle {
	return handle{c: c, done: make(chan struct{})}
}

// live returns the core, or nil when the handle is closed or zero.
func (h *handle) live() *core {
	if h.closed.Load() {
		return nil
	}
	return h.c
}

// close closes the handle once: it wakes this process's sleepers on words
// (so they notice) and drops the core reference.
func (h *handle) close(words ...*atomic.Uint32) error {
	if h.c == nil || !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(h.done)
	for _, w := range words {
		wakeAll(w)
	}
	return h.c.unref()
}

// enterGate takes the per-process gate of the core.
func (h *handle) enterGate(ctx context.Context, op string) error {
	select {
	case h.c.gate <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.c.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxError(op, ctx.Err())
	case <-h.done:
		return ErrClosed
	}
}

func (h *handle) leaveGate() { <-h.c.gate }

// tryLockWord takes a free word, or a word whose holder died (then it
// returns ErrOwnerDied and holds it). A live holder: false.
func (h *handle) tryLockWord(w *atomic.Uint32) (bool, error) {
	c := h.c
	for {
		v := w.Load()
		if v == 0 {
			if w.CompareAndSwap(0, c.slot) {
				return true, nil
			}
			continue
		}
		owner := v & slotMask
		if owner == c.slot || c.alive(owner) {
			return false, nil
		}
		if w.CompareAndSwap(v, c.slot|v&waitersBit) {
			return true, ErrOwnerDied
		}
	}
}

// lockWord is the slow path of taking a mutex word: spin briefly, then sleep
// in futex(2) with bounded timeouts, checking the holder's liveness between
// sleeps. It returns nil or ErrOwnerDied holding the word, or a ctx error or
// ErrClosed without it.
func (h *handle) lockWord(ctx context.Context, w *atomic.Uint32, useGate bool, op string) error {
	c := h.c
	me := c.slot
	// Spinning pays when the holder runs on another CPU and is about to
	// release; it stops as soon as anyone sleeps (waitersBit), since then
	// the word goes to a sleeper's turn anyway.
	for i := 0; i < spinTries; i++ {
		v := w.Load()
		if v == 0 {
			if w.CompareAndSwap(0, me) {
				return nil
			}
			continue
		}
		if v&waitersBit != 0 {
			break
		}
		spinPause()
	}
	if err := ctx.Err(); err != nil {
		return ctxError(op, err)
	}
	if useGate {
		if err := h.enterGate(ctx, op); err != nil {
			return err
		}
		defer h.leaveGate()
	}
	stop := wakeOnCancel(ctx, w)
	defer stop()

	interval := firstCheck
	var nextCheck time.Time
	for {
		if h.closed.Load() {
			return ErrClosed
		}
		v := w.Load()
		if v == 0 {
			// Others may be asleep behind us: keep the flag so that our
			// release wakes one of them.
			if w.CompareAndSwap(0, me|waitersBit) {
				return nil
			}
			continue
		}
		if v&waitersBit == 0 {
			if !w.CompareAndSwap(v, v|waitersBit) {
				continue
			}
			v |= waitersBit
		}
		now := time.Now()
		if nextCheck.IsZero() {
			nextCheck = now.Add(interval)
		} else if !now.Before(nextCheck) {
			if owner := v & slotMask; owner != me && !c.alive(owner) {
				if w.CompareAndSwap(v, me|waitersBit) {
					return ErrOwnerDied
				}
				continue
			}
			interval = min(2*interval, maxCheck)
			nextCheck = now.Add(interval)
		}
		if err := sleep(ctx, w, v, nextCheck.Sub(now)); err != nil {
			return ctxError(op, err)
		}
	}
}

// unlockWord frees a mutex word and wakes one sleeper if there may be any.
// It returns the previous value (0: it was not locked).
func unlockWord(w *atomic.Uint32) uint32 {
	old := w.Swap(0)
	if old&waitersBit != 0 {
		shm.Wake(w, 1)
	}
	return old
}

// sleep waits on the futex word w while it holds v, at most d and no longer
// than ctx allows. It returns ctx's error when ctx has ended.
func sleep(ctx context.Context, w *atomic.Uint32, v uint32, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return context.DeadlineExceeded
		}
		d = min(d, left)
	}
	if d > 0 {
		shm.Wait(w, v, d)
	}
	return ctx.Err()
}

// wakeOnCancel wakes the sleepers on w when ctx is cancelled, so a
// cancellation ends a sleep at once instead of at its timeout. Deadlines
// need no help: sleep never outlasts them.
func wakeOnCancel(ctx context.Context, w *atomic.Uint32) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	return context.AfterFunc(ctx, func() { wakeAll(w) })
}

// spinPause burns a few hundred nanoseconds without a system call.
func spinPause() {
	for i := 0; i < 30; i++ {
		_ = spinSink.Load()
	}
}

var spinSink atomic.Uint32

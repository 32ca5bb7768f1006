//go:build linux

package lock

import (
	"context"
	"sync/atomic"
)

const offEventFlag = 64

// Event is a flag shared by processes (Python's multiprocessing.Event):
// Wait blocks until some process calls Set. It has no holder, so a process
// dying cannot wedge it. Its zero value is not usable: call NewEvent.
type Event struct {
	h handle
	w *atomic.Uint32 // 0 clear, 1 set
}

// NewEvent returns a new Event, clear.
func NewEvent() (*Event, error) {
	c, err := create(kindEvent, nil)
	if err != nil {
		return nil, err
	}
	e := &Event{}
	e.init(c)
	return e, nil
}

func (e *Event) init(c *core) {
	e.h = newHandle(c)
	e.w = c.u32(offEventFlag)
}

// Set sets the flag and wakes every waiter, in every process.
func (e *Event) Set() error {
	c := e.h.live()
	if c == nil {
		return ErrClosed
	}
	raceRelease(c)
	if e.w.Swap(1) == 0 {
		wakeAll(e.w)
	}
	return nil
}

// Clear clears the flag.
func (e *Event) Clear() error {
	if e.h.live() == nil {
		return ErrClosed
	}
	e.w.Store(0)
	return nil
}

// IsSet reports whether the flag is set (false for a closed Event).
func (e *Event) IsSet() bool {
	c := e.h.live()
	if c == nil || e.w.Load() == 0 {
		return false
	}
	raceAcquire(c)
	return true
}

// Wait blocks until the flag is set or ctx ends. It returns nil at once if
// the flag is already set, and ctx's error (wrapped) if ctx ends first
// (Python's wait returning False).
func (e *Event) Wait(ctx context.Context) error {
	c := e.h.live()
	if c == nil {
		return ErrClosed
	}
	if e.w.Load() != 0 {
		raceAcquire(c)
		return nil
	}
	stop := wakeOnCancel(ctx, e.w)
	defer stop()
	for e.w.Load() == 0 {
		if e.h.closed.Load() {
			return ErrClosed
		}
		// Nobody can die holding an Event, but the bound keeps a missed
		// wake-up (a cancellation between the check and the sleep) short.
		if err := sleep(ctx, e.w, 0, maxCheck); err != nil {
			return ctxError("wait", err)
		}
	}
	raceAcquire(c)
	return nil
}

// Close releases this handle. A second Close does nothing.
func (e *Event) Close() error { return e.h.close(e.w) }

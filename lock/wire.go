//go:build linux

package lock

import (
	"fmt"

	"github.com/mpgo/multiprocessing/internal/wire"
)

// A handle travels as: state version, kind, then the 16-bit index in the
// descriptor table of each segment (one, or two for a Condition: its lock's
// and its own). The receiver never trusts the kind byte alone: the segment
// header and size must agree (attachReceived).
const stateVersion = 1

func init() {
	registerSimple(wire.ExtLock, kindLock, func(l *Lock) *handle { return &l.h }, func(l *Lock, c *core) { *l = Lock{h: newHandle(c), w: c.u32(offMutex)} })
	registerSimple(wire.ExtRLock, kindRLock, func(r *RLock) *handle { return &r.h }, func(r *RLock, c *core) { *r = RLock{h: newHandle(c), w: c.u32(offMutex)} })
	registerSimple(wire.ExtSemaphore, kindSemaphore, func(s *Semaphore) *handle { return &s.h }, func(s *Semaphore, c *core) { s.init(c) })
	registerSimple(wire.ExtBoundedSemaphore, kindBoundedSemaphore, func(s *BoundedSemaphore) *handle { return &s.s.h }, func(s *BoundedSemaphore, c *core) { s.s.init(c) })
	registerSimple(wire.ExtEvent, kindEvent, func(e *Event) *handle { return &e.h }, func(e *Event, c *core) { e.init(c) })
	registerSimple(wire.ExtBarrier, kindBarrier, func(b *Barrier) *handle { return &b.h }, func(b *Barrier, c *core) { b.init(c) })
	wire.RegisterHandle(wire.ExtCondition, func(cv *Condition, fds *wire.Files) ([]byte, error) {
		if cv.h.live() == nil || cv.l == nil || cv.l.h.live() == nil {
			return nil, fmt.Errorf("lock: cannot pass a closed Condition: %w", ErrClosed)
		}
		st, err := encodeCore(cv.l.h.c, fds, nil)
		if err != nil {
			return nil, err
		}
		return encodeCore(cv.h.c, fds, st)
	}, func(cv *Condition, state []byte, fds *wire.Files) error {
		lc, rest, err := decodeCore(state, fds, kindLock)
		if err != nil {
			return err
		}
		cc, rest, err := decodeCore(rest, fds, kindCondition)
		if err != nil {
			lc.unref()
			return err
		}
		if len(rest) != 0 {
			lc.unref()
			cc.unref()
			return fmt.Errorf("lock: bad Condition state (%d extra bytes)", len(rest))
		}
		cv.init(newLockHandle(lc), cc)
		return nil
	})
}

// registerSimple registers a one-segment type.
func registerSimple[T any](id int8, k kind, hOf func(*T) *handle, build func(*T, *core)) {
	wire.RegisterHandle(id, func(v *T, fds *wire.Files) ([]byte, error) {
		h := hOf(v)
		if h.live() == nil {
			return nil, fmt.Errorf("lock: cannot pass a closed %s: %w", k, ErrClosed)
		}
		return encodeCore(h.c, fds, nil)
	}, func(v *T, state []byte, fds *wire.Files) error {
		c, rest, err := decodeCore(state, fds, k)
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			c.unref()
			return fmt.Errorf("lock: bad %s state (%d extra bytes)", k, len(rest))
		}
		build(v, c)
		return nil
	})
}

// encodeCore appends the state of one segment to st and its descriptor (a
// duplicate) to fds.
func encodeCore(c *core, fds *wire.Files, st []byte) ([]byte, error) {
	d, err := c.dupFD()
	if err != nil {
		return nil, err
	}
	i := fds.AddOwned(d)
	if i > 0xffff {
		return nil, fmt.Errorf("lock: too many descriptors in one value")
	}
	return append(st, stateVersion, byte(c.kind), byte(i), byte(i>>8)), nil
}

// decodeCore attaches to the segment described at the start of state and
// returns the rest of state.
func decodeCore(state []byte, fds *wire.Files, want kind) (*core, []byte, error) {
	if len(state) < 4 {
		return nil, nil, fmt.Errorf("lock: %s state too short (%d bytes)", want, len(state))
	}
	if state[0] != stateVersion {
		return nil, nil, fmt.Errorf("lock: %s state version %d, this binary speaks %d", want, state[0], stateVersion)
	}
	if kind(state[1]) != want {
		return nil, nil, fmt.Errorf("lock: received a %s where a %s was expected", kind(state[1]), want)
	}
	fd, err := fds.Take(int(state[2]) | int(state[3])<<8)
	if err != nil {
		return nil, nil, err
	}
	c, err := attachReceived(fd, want)
	if err != nil {
		return nil, nil, err
	}
	return c, state[4:], nil
}

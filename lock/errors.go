//go:build linux

package lock

import (
	"errors"
	"fmt"
)

var (
	// ErrOwnerDied is returned by Acquire (and TryAcquire) of a Lock, RLock,
	// Semaphore or BoundedSemaphore when the previous holder died (or closed
	// its last handle) while holding it. The caller holds the lock (or the
	// unit) anyway, as with a robust pthread mutex's EOWNERDEAD: the data it
	// guards may be half-updated, so check it before going on.
	ErrOwnerDied = errors.New("lock: previous owner died holding the lock")

	// ErrNotOwner is returned by RLock.Release and by Condition's Release,
	// Wait and Notify when the calling process does not hold the lock.
	ErrNotOwner = errors.New("lock: not held by this process")

	// ErrTooManyReleases is returned by Lock.Release of an unlocked Lock and
	// by BoundedSemaphore.Release above the initial value.
	ErrTooManyReleases = errors.New("lock: released too many times")

	// ErrBroken is returned by Barrier.Wait when the barrier is broken: a
	// party's wait timed out or was cancelled, or Abort or Reset was called
	// while parties were waiting.
	ErrBroken = errors.New("lock: barrier is broken")

	// ErrClosed is returned when a closed (or zero) object is used.
	ErrClosed = errors.New("lock: object is closed")
)

// ctxError wraps the error of a context that ended a wait.
func ctxError(op string, err error) error {
	return fmt.Errorf("lock: %s: %w", op, err)
}

//go:build linux

package sharedmem

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/mpgo/multiprocessing/lock"
)

// Array is a fixed-length array of numbers in shared memory, with a lock
// beside it: Python's multiprocessing.Array(typecode, n) (RawArray without
// the lock).
//
// Slice gives the elements themselves. What two processes write to one
// element without holding Lock is a race, as in Python; Lock orders
// compound updates (read, compute, write) across processes.
//
// Its zero value is empty and unusable: call NewArray.
//
// An Array is safe for concurrent use by goroutines and travels to other
// processes like a Memory: in a field of type *Array[T] (or at top level),
// where the receiver's T must have the same kind and size as the sender's.
// In an interface-typed field it cannot be rebuilt (the element type does
// not travel) and decoding fails with an error.
type Array[T Number] struct {
	m  *Memory
	lk *lock.Lock
	n  int
}

// NewArray returns a zeroed array of n elements and its lock. n must be
// positive.
func NewArray[T Number](n int) (*Array[T], error) {
	var zero T
	es := int(unsafe.Sizeof(zero))
	if n <= 0 || n > math.MaxInt/es {
		return nil, fmt.Errorf("%w: %d elements of %T", ErrSize, n, zero)
	}
	m, lk, err := newWithLock(n * es)
	if err != nil {
		return nil, err
	}
	return &Array[T]{m: m, lk: lk, n: n}, nil
}

// newWithLock makes the block and the lock of an Array or a Value; on
// failure it leaves nothing behind.
func newWithLock(size int) (*Memory, *lock.Lock, error) {
	m, err := New(size)
	if err != nil {
		return nil, nil, err
	}
	lk, err := lock.NewLock()
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, lk, nil
}

// Slice returns the elements themselves: no copy and no locking, so a write
// is seen by every process that has the array. It is valid until Close, as
// Memory.Bytes (after Close it is nil).
func (a *Array[T]) Slice() []T {
	if a.m == nil {
		return nil
	}
	p := a.m.data.Load()
	if p == nil {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(p)), a.n)
}

// Len returns the number of elements (0 after Close).
func (a *Array[T]) Len() int {
	if a.m == nil || a.m.data.Load() == nil {
		return 0
	}
	return a.n
}

// Lock returns the array's lock (Python's get_lock()): a lock.Lock shared
// by every process that has the array. A holder that dies does not leave it
// held: the next Acquire gets it with lock.ErrOwnerDied. Nothing makes
// Slice wait for it; only code that takes it is ordered by it.
func (a *Array[T]) Lock() *lock.Lock { return a.lk }

// Close unmaps the array in this process and closes its lock handle; other
// processes keep theirs. Idempotent; it must not run while another
// goroutine still uses the slice.
func (a *Array[T]) Close() error {
	if a.m == nil {
		return nil // the zero Array: nothing to close
	}
	return closeWithLock(a.m, a.lk)
}

// closeWithLock closes an Array's or a Value's block and then its lock,
// and returns the first error.
func closeWithLock(m *Memory, lk *lock.Lock) error {
	err := m.Close()
	if lerr := lk.Close(); err == nil {
		err = lerr
	}
	return err
}

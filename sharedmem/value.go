//go:build linux

package sharedmem

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mpgo/multiprocessing/lock"
)

// Value is one number in shared memory with atomic operations across
// processes, and a lock beside it: Python's multiprocessing.Value(typecode,
// v), without the need to take get_lock() around "+=".
//
// Every Value has a word of its own (its own page). 32- and 64-bit
// integers use the processor's atomic add and compare-and-swap on it;
// floats a compare-and-swap loop on their bits; 8- and 16-bit types are
// kept in the low bytes of a 32-bit word, updated by compare-and-swap on
// the whole word (no neighbour shares it, so nothing else is disturbed).
//
// A Value is safe for concurrent use by goroutines and travels to other
// processes like an Array (in a field of type *Value[T], with the same
// element kind and size on both sides).
//
// Load, Store, Add and CompareAndSwap panic with an error wrapping ErrClosed
// when called after Close (or on the zero Value: call NewValue).
type Value[T Number] struct {
	p  atomic.Pointer[T] // the word; nil once closed
	m  *Memory
	lk *lock.Lock
}

// NewValue returns a Value holding v, with its lock.
func NewValue[T Number](v T) (*Value[T], error) {
	m, lk, err := newWithLock(8)
	if err != nil {
		return nil, err
	}
	x := &Value[T]{m: m, lk: lk}
	x.p.Store((*T)(unsafe.Pointer(m.data.Load())))
	x.Store(v)
	return x, nil
}

// Each operation loads the word's address and checks it by hand rather
// than through a helper: the compiler does not inline a method of a
// generic type into another, and a call would double the cost of Add.
// closedValue is out of line for the same reason.
//
//go:noinline
func closedValue(v any) {
	panic(fmt.Errorf("sharedmem: %T used after Close: %w", v, ErrClosed))
}

// Load returns the value atomically.
func (v *Value[T]) Load() T {
	p := v.p.Load()
	if p == nil {
		closedValue(v)
	}
	if wide[T]() {
		return from64[T](atomic.LoadUint64((*uint64)(unsafe.Pointer(p))))
	}
	return from32[T](atomic.LoadUint32((*uint32)(unsafe.Pointer(p))))
}

// Store sets the value atomically.
func (v *Value[T]) Store(x T) {
	p := v.p.Load()
	if p == nil {
		closedValue(v)
	}
	if wide[T]() {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(p)), bits64(x))
		return
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(p)), bits32(x))
}

// Add adds delta atomically and returns the new value. Integers wrap
// around on overflow, as Go's arithmetic does.
func (v *Value[T]) Add(delta T) T {
	p := v.p.Load()
	if p == nil {
		closedValue(v)
	}
	var zero T
	switch {
	case isFloat[T]() || unsafe.Sizeof(zero) < 4:
		return addCAS(p, delta)
	case wide[T]():
		return T(atomic.AddUint64((*uint64)(unsafe.Pointer(p)), uint64(delta)))
	default:
		return T(atomic.AddUint32((*uint32)(unsafe.Pointer(p)), uint32(delta)))
	}
}

// CompareAndSwap sets the value to new if it is old, atomically, and
// reports whether it did. Floats are compared by their bits: 0.0 and -0.0
// differ, and a NaN matches the same NaN.
func (v *Value[T]) CompareAndSwap(old, new T) bool {
	p := v.p.Load()
	if p == nil {
		closedValue(v)
	}
	return cas(p, old, new)
}

// Lock returns the value's lock (Python's get_lock()), for updates that
// need more than one operation or that span several values. Add and
// CompareAndSwap do not take it.
func (v *Value[T]) Lock() *lock.Lock { return v.lk }

// Close unmaps the value in this process and closes its lock handle.
// Idempotent; it must not run while another goroutine still uses v.
func (v *Value[T]) Close() error {
	v.p.Store(nil)
	if v.m == nil {
		return nil // the zero Value: nothing to close
	}
	return closeWithLock(v.m, v.lk)
}

// The word of a Value holds a T at its start: a 64-bit word for 8-byte
// types, a 32-bit one for the rest. Values move between T and the word
// through memory (bits32, bits64), not by conversion, so the bytes of T
// are the bytes stored whatever the byte order.

func bits32[T Number](x T) uint32 {
	var w uint32
	*(*T)(unsafe.Pointer(&w)) = x
	return w
}

func from32[T Number](w uint32) T { return *(*T)(unsafe.Pointer(&w)) }

func bits64[T Number](x T) uint64 {
	var w uint64
	*(*T)(unsafe.Pointer(&w)) = x
	return w
}

func from64[T Number](w uint64) T { return *(*T)(unsafe.Pointer(&w)) }

func wide[T Number]() bool {
	var zero T
	return unsafe.Sizeof(zero) == 8
}

// isFloat and isSigned tell the kinds of T apart with arithmetic the
// compiler folds for each instantiation.
func isFloat[T Number]() bool {
	var x T = 1
	x /= 2
	return x != 0
}

func isSigned[T Number]() bool {
	var x T
	x--
	return x < 0
}

func load[T Number](p *T) T {
	if wide[T]() {
		return from64[T](atomic.LoadUint64((*uint64)(unsafe.Pointer(p))))
	}
	return from32[T](atomic.LoadUint32((*uint32)(unsafe.Pointer(p))))
}

func cas[T Number](p *T, old, new T) bool {
	if wide[T]() {
		return atomic.CompareAndSwapUint64((*uint64)(unsafe.Pointer(p)), bits64(old), bits64(new))
	}
	return atomic.CompareAndSwapUint32((*uint32)(unsafe.Pointer(p)), bits32(old), bits32(new))
}

// addCAS adds by compare-and-swap: floats, and the 8- and 16-bit types
// (their whole 32-bit word is swapped).
func addCAS[T Number](p *T, delta T) T {
	for {
		old := load(p)
		if n := old + delta; cas(p, old, n) {
			return n
		}
	}
}

// elemCode describes T on the wire: kind (1 signed, 2 unsigned, 3 float)
// in the high nibble, size in bytes in the low one.
func elemCode[T Number]() byte {
	var zero T
	k := byte(1)
	switch {
	case isFloat[T]():
		k = 3
	case !isSigned[T]():
		k = 2
	}
	return k<<4 | byte(unsafe.Sizeof(zero))
}

func elemName(code byte) string {
	kind := map[byte]string{1: "int", 2: "uint", 3: "float"}[code>>4]
	if kind == "" {
		return fmt.Sprintf("unknown element type %#x", code)
	}
	return fmt.Sprintf("%s%d", kind, 8*int(code&0xf))
}

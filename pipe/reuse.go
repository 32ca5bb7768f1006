//go:build linux

package pipe

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Storage of large received messages is reused once the program drops it.
//
// RecvBytes must return storage the caller keeps, so each large message
// needs a fresh buffer. A fresh buffer per message is what made RecvBytes
// slow: with a small heap, 1 MiB messages start a garbage collection every
// few messages, and the collector's threads take the CPU the sending
// process needs (measured on 2 cores: 1.5 GB/s against 5-7 GB/s for
// RecvBytesInto on the same Conn). Python does not pay this: its bytes
// object is freed the moment its last reference goes and malloc hands the
// same memory to the next message.
//
// So a buffer handed out for a message between reuseMin and reuseMax bytes
// carries a finalizer. When the collector finds that the program no longer
// references the buffer, the finalizer puts it into a sync.Pool of its size
// class instead of letting it be freed, and a later message of that class
// is received into it with no allocation. A buffer still referenced,
// anywhere, through any slice of it, is never reused: that is the
// finalizer's guarantee. The pool lets go of buffers nobody takes within
// two collections, and at most reuseLimit bytes carry the finalizer at a
// time (handed out or pooled), so the memory this keeps is bounded and
// goes away when large messages stop.
const (
	reuseMin   = readBufSize // smaller messages are copied out of the read buffer
	reuseMax   = maxUpfront
	reuseLimit = 16 << 20

	// Size classes: eight per power of two, so a buffer is at most 1/8
	// larger than the message received into it.
	classesPerPow = 8
	firstPow      = 16 // log2(reuseMin): the first class holds (64 KiB, 72 KiB]
	numClasses    = (22 - firstPow) * classesPerPow
)

var (
	reusePools [numClasses]sync.Pool // of *byte, the start of a buffer of the class size

	// reuseHeld counts the bytes of buffers carrying a finalizer.
	reuseHeld atomic.Int64

	// dropped[c] runs when the program drops a buffer of class c: it goes
	// back to the pool. evicted[c] runs when the pool dropped it: it is
	// freed. Made once, so arming a buffer allocates nothing.
	dropped [numClasses]func(*byte)
	evicted [numClasses]func(*byte)
)

func init() {
	for c := range numClasses {
		dropped[c] = func(p *byte) {
			runtime.SetFinalizer(p, evicted[c])
			reusePools[c].Put(p)
		}
		evicted[c] = func(*byte) { reuseHeld.Add(-int64(classSize(c))) }
	}
}

// sizeClass returns the class of an n-byte message, reuseMin < n <= reuseMax.
func sizeClass(n int) int {
	pow := bits.Len(uint(n-1)) - 1 // 1<<pow < n <= 1<<(pow+1)
	step := 1 << (pow - 3)
	return (pow-firstPow)*classesPerPow + (n-1-(1<<pow))/step
}

// classSize returns the buffer size of class c: the largest message it holds.
func classSize(c int) int {
	pow := firstPow + c/classesPerPow
	return 1<<pow + (c%classesPerPow+1)*(1<<(pow-3))
}

// newMessage returns storage for an n-byte message that the caller may keep:
// a reused buffer when one of its class is free, else a new one. Its length
// and capacity are n, so the bytes of an earlier message in the same buffer
// are out of reach.
func newMessage(n int) []byte {
	if n <= reuseMin || n > reuseMax {
		return make([]byte, n)
	}
	c := sizeClass(n)
	size := classSize(c)
	if v := reusePools[c].Get(); v != nil {
		p := v.(*byte)
		runtime.SetFinalizer(p, nil) // evicted
		runtime.SetFinalizer(p, dropped[c])
		return unsafe.Slice(p, size)[:n:n]
	}
	if reuseHeld.Add(int64(size)) > reuseLimit {
		reuseHeld.Add(-int64(size))
		return make([]byte, n)
	}
	// The buffer's first byte is the start of its allocation, which is what
	// SetFinalizer needs; a pointer-free buffer cannot be part of a cycle
	// that would keep its finalizer from running.
	b := make([]byte, size)
	runtime.SetFinalizer(&b[0], dropped[c])
	return b[:n:n]
}

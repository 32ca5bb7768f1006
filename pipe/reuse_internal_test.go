//go:build linux

package pipe

import (
	"context"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestSizeClass checks the class arithmetic over the whole reused range: a
// message fits its class, wastes at most 1/8 of its size, and classes are
// in order.
func TestSizeClass(t *testing.T) {
	require.Equal(t, 0, sizeClass(reuseMin+1))
	require.Equal(t, numClasses-1, sizeClass(reuseMax))
	require.Equal(t, reuseMax, classSize(numClasses-1))
	prev := 0
	for n := reuseMin + 1; n <= reuseMax; n += 509 {
		for _, m := range []int{n, min(n+1, reuseMax)} {
			c := sizeClass(m)
			require.True(t, c >= 0 && c < numClasses, "class %d of %d", c, m)
			require.GreaterOrEqual(t, classSize(c), m)
			require.LessOrEqual(t, classSize(c), m+m/8+1, "size %d", m)
			require.Equal(t, c, sizeClass(classSize(c)), "a class size is in its class")
			require.GreaterOrEqual(t, c, prev)
			prev = c
		}
	}
}

// settle runs collections until cond holds: finalizers run on their own
// goroutine after the collection that queued them.
func settle(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("not settled: %d bytes held for reuse", reuseHeld.Load())
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // let the finalizer goroutine run
	}
}

// TestReuseBounded receives more large messages than the reuse limit holds,
// keeping them all: what carries a finalizer stays within the limit, a
// dropped message's storage receives a later one, and when messages stop
// the pool lets go of everything.
func TestReuseBounded(t *testing.T) {
	a, b, err := Pipe()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	const size = 1 << 20
	const count = 2 * reuseLimit / size
	done := make(chan error, 1)
	go func() {
		msg := make([]byte, size)
		for i := range count + 8 {
			msg[0] = byte(i)
			if err := a.SendBytes(msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	settle(t, func() bool { return reuseHeld.Load() == 0 })

	held := make([][]byte, 0, count)
	for range count {
		m, err := b.RecvBytes()
		require.NoError(t, err)
		require.Equal(t, len(m), cap(m))
		held = append(held, m)
		require.LessOrEqual(t, reuseHeld.Load(), int64(reuseLimit))
	}
	require.Equal(t, int64(reuseLimit/classSize(sizeClass(size))*classSize(sizeClass(size))), reuseHeld.Load(),
		"the first messages up to the limit carry the finalizer")

	// Drop them: their storage goes to the pool, and the next messages
	// are received into it.
	first := make(map[uintptr]bool)
	for _, m := range held {
		first[uintptr(unsafe.Pointer(&m[0]))] = true
	}
	held = nil
	settle(t, func() bool {
		v := reusePools[sizeClass(size)].Get()
		if v != nil {
			reusePools[sizeClass(size)].Put(v)
		}
		return v != nil
	})
	reused := 0
	for i := range 8 {
		m, err := b.RecvBytes()
		require.NoError(t, err)
		require.Equal(t, byte(count+i), m[0])
		if first[uintptr(unsafe.Pointer(&m[0]))] {
			reused++
		}
		runtime.KeepAlive(m)
	}
	require.NoError(t, <-done)
	require.Positive(t, reused, "no dropped storage was reused")

	// Nothing takes the pooled storage any more: two collections later the
	// pool drops it and its finalizer gives the bytes back.
	settle(t, func() bool { return reuseHeld.Load() == 0 })
}

//go:build linux

package pipe_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// reuseSizes cycle through the reused range's edges and beyond it: below
// 64 KiB, inside a class, exactly 4 MiB, and one byte over (not reused).
var reuseSizes = []int{70_000, 100_000, 1 << 20, 3<<20 + 5, 4 << 20, 4<<20 + 1, 65_536}

const reuseCount = 120

// patterned fills an n-byte message for index i: the index, then a byte
// that depends on both.
func patterned(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*7 + j>>9)
	}
	binary.LittleEndian.PutUint32(b, uint32(i))
	return b
}

// patterns sends reuseCount large messages: odd ones with SendBytes, even
// ones as []byte values with Send.
var patterns = process.Register("pipe_test.patterns", func(_ context.Context, c *pipe.Conn) error {
	defer c.Close()
	for i := range reuseCount {
		b := patterned(i, reuseSizes[i%len(reuseSizes)])
		var err error
		if i%2 == 1 {
			err = c.SendBytes(b)
		} else {
			err = c.Send(b)
		}
		if err != nil {
			return err
		}
	}
	return nil
})

// TestReuseNeverTouchesHeldMessages receives large messages from another
// process with RecvBytes and Recv, keeps every third, drops the others and
// collects garbage as it goes, so dropped storage is received into again.
// Every kept message must still hold what was sent, and reuse must have
// happened (else the test proves nothing).
func TestReuseNeverTouchesHeldMessages(t *testing.T) {
	ctx := testbin.Context(t)
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(patterns, b)
	require.NoError(t, p.Start())
	b.Close()

	held := map[int][]byte{}
	dropped := map[uintptr]bool{}
	reused := 0
	for i := range reuseCount {
		var m []byte
		if i%2 == 1 {
			m, err = a.RecvBytes()
		} else {
			err = a.Recv(&m)
		}
		require.NoError(t, err, "message %d", i)
		require.Equal(t, reuseSizes[i%len(reuseSizes)], len(m))
		require.Equal(t, uint32(i), binary.LittleEndian.Uint32(m), "message %d", i)
		addr := uintptr(unsafe.Pointer(&m[0]))
		if dropped[addr] {
			reused++
		}
		if i%3 == 0 {
			held[i] = m
		} else {
			dropped[addr] = true
		}
		if i%4 == 3 {
			runtime.GC()
		}
	}
	require.NoError(t, p.Join(ctx))
	for i, m := range held {
		require.Equal(t, patterned(i, len(m)), m, "kept message %d changed", i)
		require.Equal(t, len(m), cap(m), "kept message %d: capacity beyond its length", i)
	}
	require.Positive(t, reused, "no dropped message's storage received a later one")
}

// TestSendLargeBytesValue: Send of a large []byte skips the write buffer;
// what arrives must be exactly the msgpack bin the encoder writes, and the
// size limit must count its header.
func TestSendLargeBytesValue(t *testing.T) {
	a, b := pair(t)
	for _, n := range []int{16<<10 + 1, 65535, 65536, 1 << 20} {
		v := patterned(n, n)
		sent := make(chan error, 1)
		go func() { sent <- a.Send(v) }()
		got, err := b.RecvBytes()
		require.NoError(t, <-sent)
		require.NoError(t, err)
		want, err := msgpack.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, want, got, "%d bytes", n)
	}
	a.SetMaxMessageSize(1 << 20)
	require.ErrorIs(t, a.Send(make([]byte, 1<<20)), pipe.ErrTooLarge, "5 bytes of bin header over the limit")
}

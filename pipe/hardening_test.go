//go:build linux

package pipe_test

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A peer that has not authenticated cannot make Accept allocate the 1 GiB a
// frame header may announce: the handshake reads at most 256 bytes a
// message, as Python's does.
func TestHandshakeFrameLimit(t *testing.T) {
	l := listen(t, "unix", []byte("key"))
	raw, err := net.Dial("unix", l.Addr().String())
	require.NoError(t, err)
	defer raw.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	go func() {
		// Skip the challenge, then announce a message just under 1 GiB.
		var h [4]byte
		raw.Read(h[:])
		raw.Read(make([]byte, binary.BigEndian.Uint32(h[:])))
		binary.BigEndian.PutUint32(h[:], 1<<30-1)
		raw.Write(h[:])
		raw.(*net.UnixConn).CloseWrite()
	}()
	_, err = l.Accept(testbin.Context(t))
	assert.ErrorIs(t, err, pipe.ErrAuth)
	assert.ErrorIs(t, err, pipe.ErrTooLarge)
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.TotalAlloc-before, uint64(64<<20), "allocated for an unauthenticated peer")
}

type fileMsg struct {
	F   *os.File
	Pad []byte
}

// A message over the receiver's size limit is skipped; the descriptors it
// carried must go with it, not be handed to the next message's handles.
func TestOversizeMessageDropsItsHandles(t *testing.T) {
	a, b := pair(t)
	b.SetMaxMessageSize(1000)
	r1, w1, err := os.Pipe()
	require.NoError(t, err)
	defer r1.Close()
	r2, w2, err := os.Pipe()
	require.NoError(t, err)
	defer r2.Close()
	defer w2.Close()
	require.NoError(t, a.Send(fileMsg{F: w1, Pad: make([]byte, 2000)}))
	w1.Close()
	require.NoError(t, a.Send(fileMsg{F: w2}))
	before := testbin.FDCount(t)

	var m fileMsg
	assert.ErrorIs(t, b.Recv(&m), pipe.ErrTooLarge)
	require.NoError(t, b.Recv(&m))
	var got, want unix.Stat_t
	require.NoError(t, unix.Fstat(int(m.F.Fd()), &got))
	require.NoError(t, unix.Fstat(int(w2.Fd()), &want))
	assert.Equal(t, want.Ino, got.Ino, "the second message got the first one's descriptor")
	require.NoError(t, m.F.Close())
	assert.Equal(t, before, testbin.FDCount(t), "the skipped message's descriptor was not closed")
}

// A Conn whose read buffer holds data cannot be passed: the receiving
// process would not get those bytes, and its stream would start in the
// middle of nowhere. Passing it is an error until the data is read.
func TestPassConnWithBufferedData(t *testing.T) {
	a, b := pair(t)
	x, y := pair(t)
	require.NoError(t, a.SendBytes([]byte("one")))
	require.NoError(t, a.SendBytes([]byte("two")))
	_, err := b.RecvBytes() // reads both into b's buffer
	require.NoError(t, err)
	ok, err := b.Poll(0)
	require.NoError(t, err)
	require.True(t, ok, "the second message is buffered")
	err = x.Send(b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unread")
	_, err = b.RecvBytes()
	require.NoError(t, err)
	require.NoError(t, x.Send(b), "nothing buffered any more")
	var c *pipe.Conn
	require.NoError(t, y.Recv(&c))
	defer c.Close()
	require.NoError(t, a.SendBytes([]byte("three")))
	got, err := c.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "three", string(got))
}

// A server that accepts and says nothing cannot stall Dial past its ctx.
func TestDialSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1)) // until the client hangs up
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pipe.Dial(ctx, "tcp", ln.Addr().String(), []byte("k"))
	assert.ErrorIs(t, err, pipe.ErrAuth)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

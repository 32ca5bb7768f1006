//go:build linux

package pipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pair(t *testing.T) (*pipe.Conn, *pipe.Conn) {
	t.Helper()
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type record struct {
	ID    int
	Name  string
	Tags  []string
	Score float64
	Attrs map[string]int
	Raw   []byte
	Inner *record
}

func TestSendRecvValues(t *testing.T) {
	a, b := pair(t)
	in := record{ID: 7, Name: "x", Tags: []string{"a", "b"}, Score: 1.5, Attrs: map[string]int{"k": 1},
		Raw: []byte{0, 1, 2}, Inner: &record{ID: 8}}
	require.NoError(t, a.Send(in))
	var out record
	require.NoError(t, b.Recv(&out))
	assert.Equal(t, in, out)

	for _, v := range []any{nil, 42, -1, "héllo", []any{int8(1), "a"}, map[string]any{"x": true}, struct{}{}} {
		require.NoError(t, a.Send(v))
		var got any
		require.NoError(t, b.Recv(&got))
	}
}

func TestEmptyMessageAndNoMerging(t *testing.T) {
	a, b := pair(t)
	require.NoError(t, a.SendBytes([]byte{}))
	ok, err := b.Poll(time.Second)
	require.NoError(t, err)
	assert.True(t, ok, "an empty message is data available")
	got, err := b.RecvBytes()
	require.NoError(t, err)
	assert.Empty(t, got)
	for i := range 10 {
		require.NoError(t, a.SendBytes(bytes.Repeat([]byte{byte(i)}, i)))
	}
	for i := range 10 {
		got, err := b.RecvBytes()
		require.NoError(t, err)
		assert.Equal(t, bytes.Repeat([]byte{byte(i)}, i), got, "messages are never merged")
	}
}

func TestEOF(t *testing.T) {
	a, b := pair(t)
	require.NoError(t, a.SendBytes([]byte("last")))
	require.NoError(t, a.Close())
	got, err := b.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "last", string(got))
	_, err = b.RecvBytes()
	assert.ErrorIs(t, err, io.EOF)
	var v int
	assert.ErrorIs(t, b.Recv(&v), io.EOF)
}

// rawListener returns a Listener and a raw client socket to feed it bytes.
func rawPeer(t *testing.T) (*pipe.Conn, net.Conn) {
	t.Helper()
	l := listen(t, "unix", nil)
	raw, err := net.Dial("unix", l.Addr().String())
	require.NoError(t, err)
	c, err := l.Accept(testbin.Context(t))
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close(); c.Close() })
	return c, raw
}

func TestTruncatedMessage(t *testing.T) {
	c, raw := rawPeer(t)
	raw.Write([]byte{0, 0, 0, 10, 'a', 'b'})
	raw.Close()
	_, err := c.RecvBytes()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Contains(t, err.Error(), "end of file during message")
}

func TestBadFrame(t *testing.T) {
	c, raw := rawPeer(t)
	raw.Write([]byte{0xff, 0xff, 0xff, 0xfb, 1, 2, 3})
	_, err := c.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrBadFrame)
	_, err = c.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrBadFrame, "the stream is not trusted after a bad header")
}

func TestLargeEscapeHeader(t *testing.T) {
	// Python's reader accepts the 2 GiB escape at any size; so do we.
	c, raw := rawPeer(t)
	raw.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'})
	got, err := c.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))
}

func TestGarbageDecode(t *testing.T) {
	c, raw := rawPeer(t)
	raw.Write([]byte{0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff}) // an array "of 4G items"
	raw.Write([]byte{0, 0, 0, 1, 0x07})
	var v any
	err := c.Recv(&v)
	require.Error(t, err)
	var n int
	require.NoError(t, c.Recv(&n), "the connection stays usable")
	assert.Equal(t, 7, n)
}

func TestTypeMismatch(t *testing.T) {
	a, b := pair(t)
	require.NoError(t, a.Send("not a number"))
	require.NoError(t, a.Send(5))
	var n int
	assert.Error(t, b.Recv(&n))
	require.NoError(t, b.Recv(&n))
	assert.Equal(t, 5, n)
}

func TestUnencodable(t *testing.T) {
	a, b := pair(t)
	assert.Error(t, a.Send(make(chan int)))
	assert.Error(t, a.Send(func() {}))
	require.NoError(t, a.Send(1))
	var n int
	require.NoError(t, b.Recv(&n))
	assert.Equal(t, 1, n, "nothing was sent for the failed values")
}

func TestMaxMessageSize(t *testing.T) {
	a, b := pair(t)
	b.SetMaxMessageSize(1000)
	require.NoError(t, a.SendBytes(make([]byte, 5000)))
	require.NoError(t, a.SendBytes([]byte("small")))
	_, err := b.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrTooLarge)
	got, err := b.RecvBytes()
	require.NoError(t, err, "an oversize message is skipped; the connection stays usable")
	assert.Equal(t, "small", string(got))

	a.SetMaxMessageSize(10)
	assert.ErrorIs(t, a.SendBytes(make([]byte, 11)), pipe.ErrTooLarge)
	assert.ErrorIs(t, a.Send(bytes.Repeat([]byte("x"), 20)), pipe.ErrTooLarge)
}

// A header announcing a huge message is refused before any allocation.
func TestHugeHeaderNotAllocated(t *testing.T) {
	c, raw := rawPeer(t)
	c.SetMaxMessageSize(1 << 20)
	raw.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0}) // 2^60 bytes
	raw.Close()
	_, err := c.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrTooLarge)
}

func TestBufferTooShort(t *testing.T) {
	a, b := pair(t)
	require.NoError(t, a.SendBytes([]byte("0123456789")))
	buf := make([]byte, 4)
	_, err := b.RecvBytesInto(buf)
	assert.ErrorIs(t, err, pipe.ErrBufferTooShort)
	var bts *pipe.BufferTooShortError
	require.ErrorAs(t, err, &bts)
	assert.Equal(t, "0123456789", string(bts.Message))
	require.NoError(t, a.SendBytes([]byte("ok")))
	n, err := b.RecvBytesInto(buf)
	require.NoError(t, err, "the long message was consumed")
	assert.Equal(t, "ok", string(buf[:n]))
}

func TestSimplexDirection(t *testing.T) {
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.ErrorIs(t, r.Send(1), pipe.ErrReadOnly)
	assert.ErrorIs(t, r.SendBytes(nil), pipe.ErrReadOnly)
	_, err = w.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrWriteOnly)
	_, err = w.Poll(0)
	assert.ErrorIs(t, err, pipe.ErrWriteOnly)
	require.NoError(t, w.Send("one way"))
	var s string
	require.NoError(t, r.Recv(&s))
	assert.Equal(t, "one way", s)
}

func TestClose(t *testing.T) {
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer b.Close()
	done := make(chan error)
	go func() {
		_, err := a.RecvBytes()
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the Recv block (either order is correct)
	require.NoError(t, a.Close())
	assert.ErrorIs(t, <-done, pipe.ErrClosed, "Close unblocks a concurrent Recv")
	require.NoError(t, a.Close(), "Close is idempotent")
	assert.ErrorIs(t, a.Send(1), pipe.ErrClosed)
	_, err = a.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrClosed)
	_, err = a.Poll(0)
	assert.ErrorIs(t, err, pipe.ErrClosed)
	// Passing a closed Conn to a child is an error at Start.
	assert.ErrorIs(t, process.New(echo, a).Start(), pipe.ErrClosed)
}

func TestPoll(t *testing.T) {
	a, b := pair(t)
	for _, d := range []time.Duration{0, -time.Second} {
		start := time.Now()
		ok, err := b.Poll(d)
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Less(t, time.Since(start), testbin.Slack, "Poll(%v) returns at once", d)
	}
	start := time.Now()
	ok, err := b.Poll(100 * time.Millisecond)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond)
	go func() {
		time.Sleep(20 * time.Millisecond)
		a.SendBytes([]byte("x"))
	}()
	ok, err = b.Poll(10 * time.Second)
	require.NoError(t, err)
	assert.True(t, ok)
	// Data already in the read buffer counts too.
	require.NoError(t, a.SendBytes([]byte("y")))
	_, err = b.RecvBytes()
	require.NoError(t, err)
	ok, _ = b.Poll(0)
	assert.True(t, ok)
	a.Close()
	_, err = b.RecvBytes()
	require.NoError(t, err)
	ok, _ = b.Poll(0)
	assert.True(t, ok, "EOF is readable")
}

func TestWait(t *testing.T) {
	a1, b1 := pair(t)
	a2, b2 := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	ready, err := pipe.Wait(ctx, b1, b2)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, ready)
	assert.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond)

	require.NoError(t, a2.SendBytes([]byte("2")))
	ready, err = pipe.Wait(testbin.Context(t), b1, b2)
	require.NoError(t, err)
	assert.Equal(t, []*pipe.Conn{b2}, ready)
	require.NoError(t, a1.SendBytes([]byte("1")))
	ready, err = pipe.Wait(testbin.Context(t), b1, b2)
	require.NoError(t, err)
	assert.Equal(t, []*pipe.Conn{b1, b2}, ready)
}

func TestConcurrentSenders(t *testing.T) {
	a, b := pair(t)
	const senders, each = 4, 300
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				size := (i * 7919) % (200 << 10)
				msg := bytes.Repeat([]byte{byte(s)}, size)
				if err := a.SendBytes(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	counts := make([]int, senders)
	for range senders * each {
		got, err := b.RecvBytes()
		require.NoError(t, err)
		if len(got) > 0 {
			require.Equal(t, bytes.Repeat(got[:1], len(got)), got, "messages interleaved")
			counts[got[0]]++
		}
	}
	wg.Wait()
}

func Test16MiB(t *testing.T) {
	a, b := pair(t)
	msg := make([]byte, 16<<20)
	for i := range msg {
		msg[i] = byte(i * 31)
	}
	go a.SendBytes(msg)
	got, err := b.RecvBytes()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(msg, got))
}

// Conns cross process boundaries: a child echoes values, bytes and EOF.
func TestAcrossProcesses(t *testing.T) {
	a, c, err := pipe.Pipe()
	require.NoError(t, err)
	p := process.New(echo, c)
	require.NoError(t, p.Start())
	require.NoError(t, c.Close())
	for i := range 100 {
		msg := []byte(fmt.Sprint("message ", i))
		require.NoError(t, a.SendBytes(msg))
		got, err := a.RecvBytes()
		require.NoError(t, err)
		assert.Equal(t, msg, got)
	}
	big := bytes.Repeat([]byte("z"), 3<<20)
	go a.SendBytes(big)
	got, err := a.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, big, got)
	require.NoError(t, a.Close())
	require.NoError(t, p.Join(testbin.Context(t)), "the child sees EOF and exits 0")
}

// The peer process dying is EOF, not a hang.
func TestPeerKilled(t *testing.T) {
	a, c, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(echo, c)
	require.NoError(t, p.Start())
	c.Close()
	require.NoError(t, a.SendBytes([]byte("x")))
	_, err = a.RecvBytes()
	require.NoError(t, err)
	require.NoError(t, p.Kill())
	_, err = a.RecvBytes()
	assert.ErrorIs(t, err, io.EOF)
	var ee interface{ ExitCode() int }
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	assert.Equal(t, -9, ee.ExitCode())
	assert.Error(t, a.SendBytes([]byte("to nobody")), "writing to a dead peer is an error (EPIPE), not a signal")
}

func TestNoFDLeak(t *testing.T) {
	before := testbin.FDCount(t)
	for range 20 {
		a, b, err := pipe.Pipe()
		require.NoError(t, err)
		r, w, err := pipe.Simplex()
		require.NoError(t, err)
		for _, c := range []*pipe.Conn{a, b, r, w} {
			require.NoError(t, c.Close())
		}
	}
	a, c, err := pipe.Pipe()
	require.NoError(t, err)
	p := process.New(echo, c)
	require.NoError(t, p.Start())
	c.Close()
	a.Close()
	require.NoError(t, p.Join(testbin.Context(t)))
	assert.Equal(t, before, testbin.FDCount(t))
	_ = errors.New
}

//go:build linux

package pipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestRecvSplitAnywhere sends messages whose sizes sit around every edge of
// the 64 KiB read buffer (a header split across reads, a payload exactly
// filling the buffer, a large payload after buffered bytes, the 12-byte
// escape header) as a byte stream cut into random pieces, and receives them
// with RecvBytes and RecvBytesInto. Every message must come out whole.
func TestRecvSplitAnywhere(t *testing.T) {
	sizes := []int{0, 1, 3, 4, 5, 11, 12, 13, 100, 4095, 4096}
	for d := -14; d <= 14; d++ {
		sizes = append(sizes, readBufSize+d)
	}
	sizes = append(sizes, 2*readBufSize, 2*readBufSize+1, 300_000, 1<<20)
	pool := make([]byte, 2<<20)
	for i := range pool {
		pool[i] = byte(i*7 + i>>11)
	}
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var stream bytes.Buffer
		var msgs [][]byte
		for range 2 {
			for _, i := range rng.Perm(len(sizes)) {
				off := rng.IntN(len(pool) - sizes[i] + 1)
				msg := pool[off : off+sizes[i]]
				msgs = append(msgs, msg)
				if rng.IntN(4) == 0 {
					// Python's escape form, legal at any size.
					var h [largeHeaderLen]byte
					binary.BigEndian.PutUint32(h[:], escape)
					binary.BigEndian.PutUint64(h[4:], uint64(len(msg)))
					stream.Write(h[:])
				} else {
					var h [headerLen]byte
					binary.BigEndian.PutUint32(h[:], uint32(len(msg)))
					stream.Write(h[:])
				}
				stream.Write(msg)
			}
		}
		// An OS pipe (plain reads) or a unix socket (recvmsg, handles).
		c, w := rawConn(t)
		if seed%2 == 1 {
			var peer *Conn
			var err error
			c, peer, err = Pipe()
			require.NoError(t, err)
			defer peer.Close()
			w = peer.s.(*os.File)
		}
		go func() {
			b := stream.Bytes()
			for len(b) > 0 {
				n := min(len(b), 1+rng.IntN(3*readBufSize/2))
				if _, err := w.Write(b[:n]); err != nil {
					return
				}
				b = b[n:]
			}
			w.Close()
		}()
		for i, want := range msgs {
			var got []byte
			var err error
			switch i % 3 {
			case 0:
				got, err = c.RecvBytes()
			case 1:
				buf := make([]byte, len(want)+i%5)
				var n int
				n, err = c.RecvBytesInto(buf)
				got = buf[:n]
			case 2:
				buf := make([]byte, len(want)/2)
				_, err = c.RecvBytesInto(buf)
				var bts *BufferTooShortError
				if len(want) > len(buf) && errors.As(err, &bts) {
					got, err = bts.Message, nil
				} else if err == nil {
					got = buf[:len(want)]
				}
			}
			require.NoError(t, err, "seed %d message %d (%d bytes)", seed, i, len(want))
			require.True(t, bytes.Equal(want, got), "seed %d message %d (%d bytes) differs", seed, i, len(want))
		}
		_, err := c.RecvBytes()
		require.ErrorIs(t, err, errEOF())
		c.Close()
	}
}

func errEOF() error { return io.EOF }

// One large Send does not pin its encoding buffer for the Conn's life.
func TestSendBufferNotRetained(t *testing.T) {
	a, b, err := Pipe()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	big := make([]byte, 32<<20)
	go b.RecvBytes()
	require.NoError(t, a.Send(big))
	assert.LessOrEqual(t, a.wbuf.Cap(), maxKeptWriteBuf)
	require.NoError(t, a.Send(1))
	assert.Positive(t, a.wbuf.Cap(), "a small buffer is kept")
}

// Descriptors the kernel dropped (MSG_CTRUNC: more than fit, or
// RLIMIT_NOFILE reached) make the descriptor accounting untrustworthy: the
// Conn reports it and refuses further reads, rather than let a later
// message's handles be rebuilt around the wrong descriptors. What did
// arrive is closed.
func TestTruncatedRights(t *testing.T) {
	a, b, err := Pipe()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	// The received copies are counted by what they refer to, not by the
	// process's descriptor count, which other tests' late closes move.
	pipeName, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd()))
	require.NoError(t, err)
	fds := make([]int, 253)
	for i := range fds {
		fds[i] = int(r.Fd())
	}
	payload := []byte{0xc1, 'H', 253, 0xc0}
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
	require.NoError(t, unix.Sendmsg(a.fd(), frame, unix.UnixRights(fds...), nil, 0))
	r.Close()
	w.Close()
	var v any
	err = b.Recv(&v)
	assert.ErrorIs(t, err, ErrBadFrame)
	assert.Contains(t, err.Error(), "MSG_CTRUNC")
	assert.ErrorIs(t, b.Recv(&v), ErrBadFrame, "sticky")
	assert.Zero(t, openCopies(t, pipeName), "the descriptors that did arrive are closed")
}

// Messages around the size allocated before the bytes arrive (maxUpfront)
// and several times it come out whole from RecvBytes, RecvBytesInto (too
// short a buffer: the whole message in the error) and Recv of a []byte.
func TestRecvLargeGrows(t *testing.T) {
	a, b, err := Pipe()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	sizes := []int{maxUpfront - 1, maxUpfront, maxUpfront + 1, 2*maxUpfront + 5, 3 * maxUpfront}
	pool := make([]byte, 3*maxUpfront)
	for i := range pool {
		pool[i] = byte(i*13 + i>>12)
	}
	errc := make(chan error, 1)
	go func() {
		for _, n := range sizes {
			for mode := range 3 {
				var err error
				if mode == 2 {
					err = a.Send(pool[:n])
				} else {
					err = a.SendBytes(pool[:n])
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	for _, n := range sizes {
		got, err := b.RecvBytes()
		require.NoError(t, err)
		require.True(t, bytes.Equal(pool[:n], got), "RecvBytes of %d bytes", n)

		_, err = b.RecvBytesInto(make([]byte, 100))
		var short *BufferTooShortError
		require.ErrorAs(t, err, &short)
		require.True(t, bytes.Equal(pool[:n], short.Message), "RecvBytesInto of %d bytes", n)

		var v []byte
		require.NoError(t, b.Recv(&v))
		require.True(t, bytes.Equal(pool[:n], v), "Recv of a %d-byte []byte", n)
		// The value is the caller's: the next receive does not reuse it.
		copy(got, v)
		v[0]++
		require.NotEqual(t, got[0], v[0])
	}
	require.NoError(t, <-errc)
}

// A header's length is a claim: a peer that announces a near-1 GiB message
// and sends 100 KB of it makes the receiver allocate about what arrived,
// not what was announced.
func TestRecvClaimNotAllocated(t *testing.T) {
	a, b, err := Pipe()
	require.NoError(t, err)
	defer b.Close()
	go func() {
		var h [headerLen]byte
		binary.BigEndian.PutUint32(h[:], DefaultMaxMessageSize-1)
		a.write(h[:])
		a.write(make([]byte, 100_000))
		a.Close()
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = b.RecvBytes()
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(2*maxUpfront), "bytes allocated for a claim of %d", DefaultMaxMessageSize-1)
}

// openCopies counts this process's descriptors that refer to name (as
// /proc/self/fd shows it, e.g. "pipe:[1234]").
func openCopies(t *testing.T, name string) int {
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == name {
			n++
		}
	}
	return n
}

//go:build linux

package wire

import (
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

type fileArg struct{ F *os.File }

// roundTrip encodes v and decodes it into out as the receiving process
// would, with the descriptors "received" (the table's duplicates).
func roundTrip(t *testing.T, v, out any) error {
	t.Helper()
	b, files, err := Marshal(v)
	require.NoError(t, err)
	var fds []int
	for _, fd := range files.FDs() {
		d, err := unix.Dup(fd)
		require.NoError(t, err)
		fds = append(fds, d)
	}
	files.Close()
	recv := Received(fds)
	defer recv.Close()
	return Unmarshal(b, recv, out)
}

// A received file keeps the blocking mode it was sent in. O_NONBLOCK belongs
// to the open file description, which the sender (and, for a terminal or a
// shell's pipe, other programs) share: setting it on the received copy
// would make their blocking reads fail with EAGAIN.
func TestReceivedFileKeepsBlockingMode(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC)) // blocking, like a shell's pipe
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	defer r.Close()
	defer w.Close()
	var got fileArg
	require.NoError(t, roundTrip(t, fileArg{F: r}, &got))
	defer got.F.Close()
	flags, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFL, 0)
	require.NoError(t, err)
	assert.Zero(t, flags&unix.O_NONBLOCK, "receiving the file made the sender's descriptor non-blocking")

	// The sender's blocking read still works, and so does the receiver's.
	go w.Write([]byte("ab"))
	buf := make([]byte, 1)
	_, err = r.Read(buf)
	require.NoError(t, err)
	_, err = got.F.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "b", string(buf))
}

// A non-blocking one (os.Pipe, sockets) arrives in the poller: deadlines
// work on it.
func TestReceivedFileNonBlocking(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	var got fileArg
	require.NoError(t, roundTrip(t, fileArg{F: r}, &got))
	defer got.F.Close()
	require.NoError(t, got.F.SetReadDeadline(timeNowPlus(0)))
	_, err = got.F.Read(make([]byte, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func timeNowPlus(d time.Duration) time.Time { return time.Now().Add(d) }

// A value whose decoding fails after some of its handles were rebuilt does
// not keep their descriptors open: the caller gets only an error, so
// nobody else could close them.
func TestDecodeErrorClosesRebuiltHandles(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	type sent struct {
		F *os.File
		G *os.File
		N string
	}
	type wanted struct {
		F *os.File
		G *os.File
		N int // a string arrives: the decode fails after F and G
	}
	before := testbin.FDCount(t)
	var got wanted
	require.Error(t, roundTrip(t, sent{F: r, G: w, N: "x"}, &got))
	assert.Equal(t, before, testbin.FDCount(t), "descriptors of the rebuilt handles leaked")
}

// Handle states come from the peer: an index past the table, or one
// descriptor claimed by two handles, is an error, and every descriptor
// (taken or not) is closed.
func TestForgedHandleIndexes(t *testing.T) {
	ext := func(idx byte) []byte { return []byte{0xd5, byte(ExtFile), idx, 'f'} } // fixext2: index, name
	for want, data := range map[string][]byte{
		"out of range": append([]byte{0x91}, ext(3)...),
		"taken twice":  append(append([]byte{0x92}, ext(0)...), ext(0)...),
	} {
		name := want
		t.Run(name, func(t *testing.T) {
			before := testbin.FDCount(t)
			r, w, err := os.Pipe()
			require.NoError(t, err)
			fd, err := unix.Dup(int(r.Fd()))
			require.NoError(t, err)
			r.Close()
			w.Close()
			recv := Received([]int{fd})
			var out []*os.File
			err = Unmarshal(data, recv, &out)
			assert.ErrorContains(t, err, want)
			recv.Close()
			assert.Equal(t, before, testbin.FDCount(t))
		})
	}
}

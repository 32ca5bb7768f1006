//go:build linux

package lock_test

import (
	"io"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// FuzzDecode feeds arbitrary handle states, against a table of real
// descriptors (segments of every kind, a zeroed memfd of segment size, a
// pipe), to every lock type's decoder: errors are fine, panics and leaked
// descriptors are not.
func FuzzDecode(f *testing.F) {
	l, err := lock.NewLock()
	require.NoError(f, err)
	defer l.Close()
	c, err := lock.NewCondition(nil)
	require.NoError(f, err)
	defer c.Close()
	s, err := lock.NewBoundedSemaphore(1)
	require.NoError(f, err)
	defer s.Close()
	b, err := lock.NewBarrier(2)
	require.NoError(f, err)
	defer b.Close()
	_, sent, err := wire.Marshal([]any{l, c, s, b}) // descriptors 0..4
	require.NoError(f, err)
	defer sent.Close()
	zero, err := unix.MemfdCreate("zero", unix.MFD_CLOEXEC)
	require.NoError(f, err)
	require.NoError(f, unix.Ftruncate(zero, 4096))
	defer unix.Close(zero)
	var p [2]int
	require.NoError(f, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	table := append(append([]int{}, sent.FDs()...), zero, p[0])

	f.Add(byte(0), []byte{1, 1, 0, 0})             // a Lock
	f.Add(byte(5), []byte{1, 1, 1, 0, 1, 6, 2, 0}) // a Condition
	f.Add(byte(3), []byte{1, 4, 3, 0})             // a BoundedSemaphore
	f.Add(byte(6), []byte{1, 7, 4, 0})             // a Barrier
	f.Add(byte(0), []byte{1, 1, 5, 0})             // a zeroed memfd
	f.Add(byte(4), []byte{1, 5, 6, 0})             // a pipe
	f.Add(byte(1), []byte{1, 1, 0, 0})             // a Lock where an RLock is due
	f.Add(byte(0), []byte{2, 1, 0, 0})             // a future version
	f.Add(byte(0), []byte{1, 1, 9, 9})             // no such descriptor
	f.Add(byte(0), []byte{1})
	f.Add(byte(5), []byte{1, 1, 0, 0, 1, 6, 0, 0}) // one descriptor twice

	f.Fuzz(func(t *testing.T, which byte, state []byte) {
		if len(state) > 250 {
			return
		}
		fds := make([]int, len(table))
		for i, fd := range table {
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			require.NoError(t, err)
			fds[i] = d
		}
		files := wire.Received(fds)
		defer files.Close()
		exts := []int8{wire.ExtLock, wire.ExtRLock, wire.ExtSemaphore, wire.ExtBoundedSemaphore,
			wire.ExtEvent, wire.ExtCondition, wire.ExtBarrier}
		data := append([]byte{0xc7, byte(len(state)), byte(exts[int(which)%len(exts)])}, state...)
		var v any
		switch int(which) % len(exts) {
		case 0:
			v = new(*lock.Lock)
		case 1:
			v = new(*lock.RLock)
		case 2:
			v = new(*lock.Semaphore)
		case 3:
			v = new(*lock.BoundedSemaphore)
		case 4:
			v = new(*lock.Event)
		case 5:
			v = new(*lock.Condition)
		default:
			v = new(*lock.Barrier)
		}
		if err := wire.Unmarshal(data, files, v); err != nil {
			return
		}
		closeDecoded(t, v)
	})
}

func closeDecoded(t *testing.T, v any) {
	var c io.Closer
	switch p := v.(type) {
	case **lock.Lock:
		c = *p
	case **lock.RLock:
		c = *p
	case **lock.Semaphore:
		c = *p
	case **lock.BoundedSemaphore:
		c = *p
	case **lock.Event:
		c = *p
	case **lock.Condition:
		c = *p
	case **lock.Barrier:
		c = *p
	}
	require.NoError(t, c.Close())
}

// A handle decoded in the process that already has the object joins the
// existing attachment: ownership is the same whichever handle asks.
func TestDecodeJoinsAttachment(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	c, err := lock.NewCondition(l)
	require.NoError(t, err)
	defer c.Close()
	data, sent, err := wire.Marshal(c)
	require.NoError(t, err)
	fds := make([]int, sent.Len())
	for i, fd := range sent.FDs() {
		fds[i], err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		require.NoError(t, err)
	}
	require.NoError(t, sent.Close())
	files := wire.Received(fds)
	defer files.Close()
	var c2 *lock.Condition
	require.NoError(t, wire.Unmarshal(data, files, &c2))
	defer c2.Close()
	require.NoError(t, l.Acquire(testbin.ContextFor(t, time.Second)))
	require.NoError(t, c2.Notify(1), "the decoded Condition sees this process holding the lock")
	require.NoError(t, c2.Release())
	ok, err := l.TryAcquire()
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, l.Release())
}

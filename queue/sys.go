//go:build linux

package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/shm"
	"golang.org/x/sys/unix"
)

// Pipe capacities asked for with F_SETPIPE_SZ. A packet-mode pipe holds one
// packet per page whatever its length, so the main pipe's 1 MiB (the
// default /proc/sys/fs/pipe-max-size) is 256 items before writers have to
// wait, against 16 with the kernel's default. The chunk pipe carries one
// large item at a time, handed from writer to reader: 256 KiB keeps both
// busy. Pages count against a per-user budget (pipe-user-pages-soft); when
// the kernel refuses, the default stays: correct, only slower.
const (
	mainPipeSize  = 1 << 20
	chunkPipeSize = 256 << 10
)

// newPacketPipe returns a non-blocking packet-mode pipe (pipe2 with
// O_DIRECT, see pipe(2)): every write of at most PIPE_BUF bytes is one
// packet, and every read returns at most one packet. Both are atomic, which
// is what makes a process killed at any instant harmless to the others.
func newPacketPipe(size int) (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_DIRECT|unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return -1, -1, fmt.Errorf("queue: pipe2: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size)
	return p[0], p[1], nil
}

// checkPipeFlags makes sure a received pipe end is non-blocking and, for a
// write end, in packet mode. The flags belong to the open file description,
// which every process sharing the queue shares: a careless F_SETFL anywhere
// would otherwise turn reads into blocking ones or writes into a byte
// stream.
func checkPipeFlags(fd int, write bool) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	want := fl | unix.O_NONBLOCK
	if write {
		want |= unix.O_DIRECT
	}
	if want != fl {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, want)
	}
	return err
}

// writePacket writes one packet with one system call.
func writePacket(fd int, p []byte) error {
	for {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != len(p) {
			// Cannot happen for len(p) <= PIPE_BUF (pipe(7)); a pipe that
			// lost its packet mode would show it here.
			return fmt.Errorf("queue: short pipe write (%d of %d bytes)", n, len(p))
		}
		return nil
	}
}

// readPacket reads one packet; unix.EAGAIN when the pipe is empty.
func readPacket(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n == 0 {
			// Every process holding the queue holds the write end too, so
			// end of file means the descriptors were closed under us.
			return 0, ErrClosed
		}
		return n, err
	}
}

// writePacket2 writes one packet made of hdr and data with one system call
// (writev): a chunk is written from the item's own bytes, with no copy into
// a packet buffer. len(hdr)+len(data) <= PIPE_BUF: one atomic write, one
// packet, as with writePacket.
func writePacket2(fd int, hdr, data []byte) error {
	var iov [2]unix.Iovec
	iov[0].Base, iov[0].Len = &hdr[0], uint64(len(hdr))
	cnt := 1
	if len(data) > 0 {
		iov[1].Base, iov[1].Len = &data[0], uint64(len(data))
		cnt = 2
	}
	want := len(hdr) + len(data)
	for {
		n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		if int(n) != want {
			return fmt.Errorf("queue: short pipe write (%d of %d bytes)", n, want)
		}
		return nil
	}
}

// readPacketv reads one packet scattered over bufs (readv): a chunk's data
// lands in the item it belongs to. unix.EAGAIN when the pipe is empty.
func readPacketv(fd int, bufs [][]byte) (int, error) {
	var iov [3]unix.Iovec
	cnt := 0
	for _, b := range bufs {
		if len(b) > 0 {
			iov[cnt].Base, iov[cnt].Len = &b[0], uint64(len(b))
			cnt++
		}
	}
	for {
		n, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		if n == 0 {
			return 0, ErrClosed // as in readPacket
		}
		return int(n), nil
	}
}

// pipeBytes returns the number of unread bytes in a pipe (FIONREAD, named
// TIOCINQ in x/sys).
func pipeBytes(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

// OFD locks (fcntl F_OFD_SETLK, Linux 3.15) on single bytes of the queue's
// memfd. They belong to an open file description: each process opens its
// own description of the memfd (through /proc/self/fd, see openLockFD),
// never shares it, so the kernel releases its locks when it dies, SIGKILL
// included. Byte ranges let one file carry the writer lock, the reader lock
// and one liveness lock per process slot.

func ofdLock(fd int, off int64, typ int16) error {
	l := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &l)
		if err != unix.EINTR {
			return err
		}
	}
}

// ofdTryLock takes the write lock on byte off, reporting false when another
// description holds it.
func ofdTryLock(fd int, off int64) (bool, error) {
	err := ofdLock(fd, off, unix.F_WRLCK)
	if err == unix.EAGAIN || err == unix.EACCES {
		return false, nil
	}
	return err == nil, err
}

func ofdUnlock(fd int, off int64) { _ = ofdLock(fd, off, unix.F_UNLCK) }

// ofdHeld reports whether any description holds a lock on byte off. probe
// must be a description that never takes locks itself: F_OFD_GETLK does not
// report the caller's own locks.
func ofdHeld(probe int, off int64) bool {
	l := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(probe), unix.F_OFD_GETLK, &l)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true // cannot tell: assume alive, the safe side
		}
		return l.Type != unix.F_UNLCK
	}
}

// openLockFD opens this process's own description of the memfd fd.
func openLockFD(fd int) (int, error) {
	for {
		l, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("queue: reopen shared memory for locking (is /proc mounted?): %w", err)
		}
		return l, nil
	}
}

// waker is an eventfd that interrupts a poll when a context ends. Wakers
// are reused through a per-queue pool: creating one costs two system calls,
// and a blocking Get or Put needs one each time it sleeps.
type waker struct {
	fd    int
	fired atomic.Bool
}

type wakerPool struct {
	mu   sync.Mutex
	free []*waker
	done bool
}

func (p *wakerPool) get() (*waker, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("queue: eventfd: %w", err)
	}
	return &waker{fd: fd}, nil
}

func (p *wakerPool) put(w *waker) {
	if w.fired.Swap(false) {
		var b [8]byte
		_, _ = unix.Read(w.fd, b[:])
	}
	p.mu.Lock()
	if p.done || len(p.free) >= 8 {
		p.mu.Unlock()
		unix.Close(w.fd)
		return
	}
	p.free = append(p.free, w)
	p.mu.Unlock()
}

func (p *wakerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.free {
		unix.Close(w.fd)
	}
	p.free = nil
	p.done = true
}

func signalFD(fd int) {
	b := [8]byte{1}
	_, _ = unix.Write(fd, b[:])
}

// errWoken says a wait ended because the queue is closing.
var errWoken = errors.New("queue: woken")

// pollWait sleeps until fd has any of events, ctx ends, the queue's close
// eventfd fires, or max elapses (max < 0: no limit). It returns ctx's error
// when ctx ended, errWoken on close, nil otherwise (the caller retries its
// operation, so spurious returns are harmless).
func (c *core) pollWait(ctx context.Context, fd int, events int16, max time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fds := [3]unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(c.wakeFD), Events: unix.POLLIN}}
	n := 2
	var w *waker
	if done := ctx.Done(); done != nil {
		var err error
		if w, err = c.wakers.get(); err != nil {
			return err
		}
		fds[2] = unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN}
		n = 3
		stop := context.AfterFunc(ctx, func() {
			signalFD(w.fd)
			w.fired.Store(true)
		})
		defer func() {
			if !stop() {
				// The function ran or is running; wait until it has written
				// so that put drains the eventfd before it is reused.
				for !w.fired.Load() {
					time.Sleep(10 * time.Microsecond)
				}
			}
			c.wakers.put(w)
		}()
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return ctx.Err()
		}
		if max < 0 || left < max {
			max = left
		}
	}
	var ts *unix.Timespec
	if max >= 0 {
		t := unix.NsecToTimespec(max.Nanoseconds())
		ts = &t
	}
	_, err := unix.Ppoll(fds[:n], ts, nil)
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("queue: poll: %w", err)
	}
	if fds[1].Revents != 0 {
		return errWoken
	}
	return ctx.Err()
}

// futexWait sleeps while *word == val, at most max, or until ctx ends or the
// queue closes (both wake every waiter on the word; the others re-check and
// sleep again). Futex waits are only hints: callers re-check their
// condition in a loop, and max bounds every sleep so that a waker that died
// before waking anyone costs a delay, never a hang.
func (c *core) futexWait(ctx context.Context, word *atomic.Uint32, val uint32, max time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { shm.Wake(word, 1<<30) })
		defer stop()
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < max {
			max = left
		}
		if max <= 0 {
			return ctx.Err()
		}
	}
	shm.Wait(word, val, max)
	if c.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

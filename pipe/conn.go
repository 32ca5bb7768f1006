//go:build linux

package pipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

// DefaultMaxMessageSize is the largest message a Conn accepts unless
// SetMaxMessageSize says otherwise: 1 GiB.
const DefaultMaxMessageSize = 1 << 30

// readBufSize is the read buffer: small messages arrive header and payload in
// one read system call.
const readBufSize = 64 << 10

// smallWrite is the size up to which header and payload are copied into one
// buffer and written with one system call (Python does the same up to 16 KiB
// to avoid Nagle delays on TCP).
const smallWrite = 16 << 10

// stream is what a Conn reads and writes: an *os.File (socketpair, pipe, a
// received descriptor) or a net.Conn from Listen/Dial. Both go through the
// runtime poller, so Close unblocks a reader and goroutines do not pin
// threads.
type stream interface {
	io.ReadWriteCloser
	syscall.Conn
	SetReadDeadline(time.Time) error
}

// Conn is one end of a connection carrying whole messages. It is safe for
// concurrent use: one Send and one Recv can run at once, and concurrent
// Sends (or Recvs) are serialised so that messages never interleave.
//
// A Conn can be passed to a child process inside a process argument and
// arrives there working; the parent may close its copy as soon as Start
// returns.
type Conn struct {
	s        stream
	readable bool
	writable bool
	maxSize  atomic.Int64
	closed   atomic.Bool

	rmu  sync.Mutex
	rbuf []byte // buffered bytes are rbuf[rpos:rend]
	rpos int
	rend int
	rerr error // sticky read error (ErrBadFrame, EOF)
	// unread is set when bytes or descriptors are left in the buffers
	// after a receive: such a Conn cannot be passed to another process.
	unread atomic.Bool
	fdq    []int // descriptors received and not yet claimed by a message (unix sockets)
	oob    []byte
	kind   connKind
	noSkip bool // during the handshake: an oversize message is an error that ends it, not skipped
	wmu    sync.Mutex
	wbuf   bytes.Buffer
	closer sync.Once

	wakeMu sync.Mutex
	wakers []int // eventfds of the Waits and Polls in progress, for Close to wake
}

func newConn(s stream, readable, writable bool) *Conn {
	c := &Conn{s: s, readable: readable, writable: writable, kind: detectKind(s)}
	c.maxSize.Store(DefaultMaxMessageSize)
	return c
}

// Pipe returns the two ends of a duplex connection (a unix socketpair), as
// Python's Pipe() does.
func Pipe() (*Conn, *Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("pipe: socketpair: %w", err)
	}
	return newConn(os.NewFile(uintptr(fds[0]), "pipe"), true, true),
		newConn(os.NewFile(uintptr(fds[1]), "pipe"), true, true), nil
}

// Simplex returns the read and write ends of a one-way connection (an OS
// pipe), as Python's Pipe(duplex=False) does. Recv on w and Send on r are
// errors.
func Simplex() (r, w *Conn, err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	return newConn(pr, true, false), newConn(pw, false, true), nil
}

// SetMaxMessageSize sets the largest message this end sends or accepts.
// n <= 0 restores DefaultMaxMessageSize.
func (c *Conn) SetMaxMessageSize(n int) {
	if n <= 0 {
		n = DefaultMaxMessageSize
	}
	c.maxSize.Store(int64(n))
}

// RefuseOversize makes a received message over the size limit end the
// connection's reading: the receive returns ErrTooLarge without reading
// the message, and every later receive fails the same way. A server whose
// peers must not make it read (and discard) what they announce, up to the
// 16 EiB a header can, closes the connection on that error. By default the
// message is read and discarded and the Conn stays usable.
func (c *Conn) RefuseOversize() {
	c.rmu.Lock()
	c.noSkip = true
	c.rmu.Unlock()
}

// Send encodes v as msgpack and sends it as one message. A value that cannot
// be encoded is an error and nothing is sent.
func (c *Conn) Send(v any) error {
	if err := c.checkWrite(); err != nil {
		return err
	}
	if b, ok := v.([]byte); ok && len(b) > smallWrite && len(b) <= math.MaxUint32 {
		return c.sendBin(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer c.trimWriteBuf()
	c.wbuf.Reset()
	// Room for the header and, if v holds handles, the handles mark.
	c.wbuf.Write([]byte{0, 0, 0, 0, 0, 0, 0})
	var files *wire.Files
	if c.unixSocket() {
		files = &wire.Files{}
		defer files.Close()
	}
	if err := wire.AppendTo(&c.wbuf, files, v); err != nil {
		return fmt.Errorf("pipe: send: %w", err)
	}
	b := c.wbuf.Bytes()
	if files.Len() > 0 {
		return c.sendRights(b, files)
	}
	b = b[handlesMarkLen:]
	n := len(b) - headerLen
	if int64(n) > c.maxSize.Load() {
		return fmt.Errorf("pipe: send %d bytes: %w", n, ErrTooLarge)
	}
	if n > 1<<31-1 {
		// Rare: redo the header as the large-message escape.
		var h [largeHeaderLen]byte
		putHeader(h[:], n)
		if err := c.write(h[:]); err != nil {
			return err
		}
		return c.write(b[headerLen:])
	}
	putHeader(b, n)
	return c.write(b)
}

// sendBin sends a large []byte value as Send would encode it, a msgpack
// bin, without first copying it into the write buffer.
func (c *Conn) sendBin(b []byte) error {
	var bin [5]byte
	return c.sendFramed(msgp.AppendBinHeader(bin[:0], len(b)), b)
}

// maxKeptWriteBuf is the largest encoding buffer a Conn keeps between
// Sends: repeated messages up to this size reuse it, and one huge message
// does not pin its size for the Conn's life.
const maxKeptWriteBuf = 4 << 20

func (c *Conn) trimWriteBuf() {
	if c.wbuf.Cap() > maxKeptWriteBuf {
		c.wbuf = bytes.Buffer{}
	}
}

// SendBytes sends b as one message, unchanged. An empty message is legal.
func (c *Conn) SendBytes(b []byte) error {
	if err := c.checkWrite(); err != nil {
		return err
	}
	return c.sendFramed(nil, b)
}

// sendFramed sends prefix (at most 5 bytes) followed by b as one message.
// A small message goes out in one write; a large one as its headers, then
// b itself, uncopied.
func (c *Conn) sendFramed(prefix, b []byte) error {
	n := len(prefix) + len(b)
	if int64(n) > c.maxSize.Load() {
		return fmt.Errorf("pipe: send %d bytes: %w", n, ErrTooLarge)
	}
	var h [largeHeaderLen + 5]byte
	hl := putHeader(h[:], n)
	hl += copy(h[hl:], prefix)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(b) <= smallWrite {
		c.wbuf.Reset()
		c.wbuf.Write(h[:hl])
		c.wbuf.Write(b)
		return c.write(c.wbuf.Bytes())
	}
	if err := c.write(h[:hl]); err != nil {
		return err
	}
	return c.write(b)
}

func (c *Conn) write(b []byte) error {
	if _, err := c.s.Write(b); err != nil {
		return c.mapErr("send", err)
	}
	return nil
}

func (c *Conn) checkWrite() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.writable {
		return ErrReadOnly
	}
	return nil
}

func (c *Conn) checkRead() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.readable {
		return ErrWriteOnly
	}
	return nil
}

// mapErr turns a closed-descriptor error into ErrClosed and wraps the rest.
func (c *Conn) mapErr(op string, err error) error {
	if errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) || c.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("pipe: %s: %w", op, err)
}

// Recv receives one message and decodes it into v, which must be a pointer.
// It returns io.EOF when the peer has closed and every message was read. A
// message that does not decode into v is an error; the message is consumed
// and the connection stays usable.
func (c *Conn) Recv(v any) error {
	if err := c.checkRead(); err != nil {
		return err
	}
	c.rmu.Lock()
	defer c.unlockRead()
	msg, owned, err := c.recvLocked(nil)
	if err != nil {
		return err
	}
	msg, files := c.claimRights(msg)
	if p, ok := v.(*[]byte); ok && owned && files == nil {
		// A large []byte arrived in storage of its own: the value is
		// that storage, past the msgpack header, without a copy.
		if b, n, err := msgp.ReadBytes(msg); err == nil && n == len(msg) {
			*p = b
			return nil
		}
	}
	err = wire.Unmarshal(msg, files, v)
	files.Close() // what the value did not take
	if err != nil {
		return fmt.Errorf("pipe: recv: %w", err)
	}
	return nil
}

// RecvBytes receives one message as a new byte slice, which the caller
// keeps. It returns io.EOF when the peer has closed and every message was
// read. The storage of a large message the program has dropped is reused
// for a later one (see "Memory" in the package documentation); to receive
// into storage of your own, use [Conn.RecvBytesInto].
func (c *Conn) RecvBytes() ([]byte, error) {
	if err := c.checkRead(); err != nil {
		return nil, err
	}
	c.rmu.Lock()
	defer c.unlockRead()
	msg, owned, err := c.recvLocked(nil)
	if err != nil {
		return nil, err
	}
	c.dropRights(msg)
	if owned {
		return msg, nil
	}
	return bytes.Clone(msg), nil
}

// RecvBytesInto receives one message into buf and returns its length. When
// the message is longer than buf the error is a *BufferTooShortError holding
// the whole message (errors.Is(err, ErrBufferTooShort)); the message is
// consumed either way.
func (c *Conn) RecvBytesInto(buf []byte) (int, error) {
	if err := c.checkRead(); err != nil {
		return 0, err
	}
	c.rmu.Lock()
	defer c.unlockRead()
	msg, owned, err := c.recvLocked(buf)
	if err != nil {
		return 0, err
	}
	c.dropRights(msg)
	if len(msg) > len(buf) {
		if !owned {
			msg = bytes.Clone(msg)
		}
		return 0, &BufferTooShortError{Message: msg}
	}
	if len(msg) > 0 && &msg[0] == &buf[0] {
		return len(msg), nil
	}
	return copy(buf, msg), nil
}

// unlockRead notes whether anything is left in the read buffers and
// releases rmu.
func (c *Conn) unlockRead() {
	c.unread.Store(c.rend > c.rpos || len(c.fdq) > 0)
	c.rmu.Unlock()
}

// maxUpfront is the most a receive allocates for a message before its
// bytes arrive: the header's length is the peer's claim, so a larger
// message grows its buffer as the bytes really come, and a peer that
// announces a gigabyte and sends nothing costs this much, not the gigabyte.
const maxUpfront = 4 << 20

// recvLocked reads one message. The result aliases the read buffer (valid
// until the next read), or dst when the payload is large and fits dst;
// owned reports the third case, a large payload in storage of its own
// (from newMessage) that the caller may keep.
func (c *Conn) recvLocked(dst []byte) (msg []byte, owned bool, err error) {
	if c.rerr != nil {
		return nil, false, c.rerr
	}
	if c.rbuf == nil {
		c.rbuf = make([]byte, readBufSize)
	}
	// Header.
	var n int64
	var hlen int
	for {
		var need int
		var err error
		n, hlen, need, err = parseHeader(c.rbuf[c.rpos:c.rend])
		if err != nil {
			c.rerr = err
			return nil, false, err
		}
		if need == 0 {
			break
		}
		if err := c.fill(need, c.rend > c.rpos); err != nil {
			return nil, false, err
		}
	}
	c.rpos += hlen
	if max := c.maxSize.Load(); n > max {
		err := fmt.Errorf("pipe: recv: %d-byte message over the %d-byte limit: %w", n, max, ErrTooLarge)
		if c.noSkip {
			c.rerr = err
			return nil, false, err
		}
		// Descriptors that came with the message go with it; left in the
		// queue they would be claimed by the next message's handles.
		if c.kind == kindUnix && n >= handlesMarkLen {
			if ferr := c.fill(handlesMarkLen, true); ferr != nil {
				return nil, false, fmt.Errorf("%w (and %w)", err, ferr)
			}
			c.dropRights(c.rbuf[c.rpos : c.rpos+handlesMarkLen])
		}
		if derr := c.discard(n); derr != nil {
			return nil, false, fmt.Errorf("%w (and %w)", err, derr)
		}
		return nil, false, err
	}
	size := int(n)
	// Small payload: it is, or will be, in the read buffer.
	if size <= len(c.rbuf) {
		if c.rend-c.rpos < size {
			if err := c.fill(size, true); err != nil {
				return nil, false, err
			}
		}
		msg := c.rbuf[c.rpos : c.rpos+size]
		c.rpos += size
		return msg, false, nil
	}
	// Large payload: read straight into its destination.
	var out []byte
	if size <= len(dst) {
		out = dst[:size]
	} else {
		out = newMessage(min(size, maxUpfront))
		owned = true
	}
	k := copy(out, c.rbuf[c.rpos:c.rend])
	c.rpos += k
	for k < size {
		if k == len(out) {
			// Doubling keeps the copies within the message's size in all.
			grown := make([]byte, min(2*len(out), size))
			copy(grown, out)
			out = grown
		}
		m, err := c.read(out[k:])
		k += m
		if err != nil {
			return nil, false, c.readErr(err, true)
		}
	}
	return out, owned, nil
}

// fill makes at least need bytes available at rbuf[rpos:], reading as much
// as one read returns. partial tells whether a message has begun, which
// makes EOF an error rather than the end of the stream.
func (c *Conn) fill(need int, partial bool) error {
	if c.rpos > 0 && len(c.rbuf)-c.rpos < need {
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	for c.rend-c.rpos < need {
		m, err := c.read(c.rbuf[c.rend:])
		c.rend += m
		if err != nil {
			if c.rend-c.rpos >= need {
				break
			}
			return c.readErr(err, partial || c.rend > c.rpos)
		}
	}
	return nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// read reads what is available into p, waiting in the runtime poller when
// nothing is (so an idle Conn costs no thread and Close unblocks it). A
// unix socket is read with recvmsg, which also collects the descriptors
// that travel with values holding handles.
//
// Waiting briefly in a blocking ppoll before parking, as a C reader would
// block in read, was tried and measured slower here in every interleaved
// run (the thread hand-offs cost more than the poller's wake-up).
func (c *Conn) read(p []byte) (int, error) {
	rc, err := c.s.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			if c.kind == kindUnix {
				n, rerr = c.recvRights(int(fd), p)
			} else {
				n, rerr = unix.Read(int(fd), p)
			}
			switch rerr {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // park in the poller until readable
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// discard skips an n-byte payload without storing it.
func (c *Conn) discard(n int64) error {
	k := min(n, int64(c.rend-c.rpos))
	c.rpos += int(k)
	n -= k
	if n == 0 {
		return nil
	}
	if _, err := io.CopyN(io.Discard, readerFunc(c.read), n); err != nil {
		return c.readErr(err, true)
	}
	return nil
}

func (c *Conn) readErr(err error, partial bool) error {
	if errors.Is(err, io.EOF) {
		if partial {
			c.rerr = fmt.Errorf("pipe: recv: got end of file during message: %w", io.ErrUnexpectedEOF)
			return c.rerr
		}
		return io.EOF
	}
	return c.mapErr("recv", err)
}

// Close closes this end. The peer's Recv returns io.EOF once it has read
// what was sent. Close is idempotent; a concurrent Recv returns ErrClosed.
func (c *Conn) Close() error {
	err := ErrClosed
	c.closer.Do(func() {
		c.wakeWaiters()
		err = c.s.Close()
		// A blocked reader returns once the stream is closed; then the
		// descriptors nobody claimed can go.
		c.rmu.Lock()
		c.closeRights()
		c.rmu.Unlock()
	})
	if err == ErrClosed {
		return nil
	}
	return err
}

// fd returns the descriptor without changing its mode, or -1 once closed.
func (c *Conn) fd() int {
	rc, err := c.s.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(u uintptr) { fd = int(u) }) != nil {
		return -1
	}
	return fd
}

// buffered reports whether a message (or the start of one) is already read.
func (c *Conn) buffered() bool {
	if !c.rmu.TryLock() {
		return false
	}
	defer c.rmu.Unlock()
	return c.rend > c.rpos || c.rerr != nil
}

// Handle passing: the descriptor is duplicated (the sender's Conn stays
// usable) and the receiver rebuilds a Conn around it. Bytes already read
// into this end's buffer could not go with it, so passing such a Conn is an
// error until they are received.
func init() {
	wire.RegisterHandle(wire.ExtPipeConn, func(c *Conn, fds *wire.Files) ([]byte, error) {
		if c.closed.Load() {
			return nil, fmt.Errorf("pipe: cannot pass a closed Conn: %w", ErrClosed)
		}
		if c.unread.Load() {
			// Those bytes would stay here and the receiver's stream would
			// begin in the middle of a message, or a message late.
			return nil, errors.New("pipe: cannot pass a Conn with unread data in its buffer: receive it first")
		}
		fd := c.fd()
		if fd < 0 {
			return nil, ErrClosed
		}
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("pipe: dup: %w", err)
		}
		i := fds.AddOwned(d)
		var flags byte
		if c.readable {
			flags |= 1
		}
		if c.writable {
			flags |= 2
		}
		return []byte{byte(i), byte(i >> 8), flags}, nil
	}, func(c *Conn, state []byte, fds *wire.Files) error {
		if len(state) != 3 {
			return fmt.Errorf("pipe: bad Conn state (%d bytes)", len(state))
		}
		fd, err := fds.Take(int(state[0]) | int(state[1])<<8)
		if err != nil {
			return err
		}
		// A Conn's descriptor is non-blocking already (socketpair, os.Pipe,
		// net): this only matters for a peer that passed something else,
		// which a Conn could not use in blocking mode (Close would not
		// interrupt a Recv).
		unix.SetNonblock(fd, true)
		c.s = wire.NewFile(fd, "pipe")
		c.kind = detectKind(c.s)
		c.readable, c.writable = state[2]&1 != 0, state[2]&2 != 0
		c.maxSize.Store(DefaultMaxMessageSize)
		return nil
	})
}

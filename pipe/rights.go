//go:build linux

package pipe

import (
	"fmt"

	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

// Handles over a connection. On a unix socket, Send may carry values that
// hold handles (a *Conn, *os.File, net.Conn, a queue or a lock): their
// descriptors travel beside the bytes as SCM_RIGHTS, and Recv rebuilds
// working objects, as Python does when it pickles a Connection.
//
// The payload of such a message starts with handlesMark: 0xc1, the one
// byte msgpack never uses (so no plain Send payload starts with it), 'H',
// and the number of descriptors. Every read of a unix socket is a recvmsg;
// descriptors queue in arrival order and each marked message claims its
// count from the front. The kernel attaches them to the first byte of the
// sendmsg that carried them, so they arrive before the bytes of the
// message that owns them is complete.
const (
	handlesMarkLen = 3
	maxRights      = 250 // SCM_MAX_FD is 253
)

type connKind uint8

const (
	kindOther connKind = iota
	kindUnix           // a unix stream socket: may carry descriptors
)

func detectKind(s stream) connKind {
	rc, err := s.SyscallConn()
	if err != nil {
		return kindOther
	}
	kind := kindOther
	rc.Control(func(fd uintptr) {
		dom, err1 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		typ, err2 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		if err1 == nil && err2 == nil && dom == unix.AF_UNIX && typ == unix.SOCK_STREAM {
			kind = kindUnix
		}
	})
	return kind
}

func (c *Conn) unixSocket() bool { return c.kind == kindUnix }

// sendRights sends b (header room, mark room, payload) with the
// descriptors in files.
func (c *Conn) sendRights(b []byte, files *wire.Files) error {
	if files.Len() > maxRights {
		return fmt.Errorf("pipe: send: %d handles in one message, at most %d", files.Len(), maxRights)
	}
	n := len(b) - headerLen
	if int64(n) > c.maxSize.Load() || n > 1<<31-1 {
		return fmt.Errorf("pipe: send %d bytes: %w", n, ErrTooLarge)
	}
	putHeader(b, n)
	b[4], b[5], b[6] = 0xc1, 'H', byte(files.Len())
	oob := unix.UnixRights(files.FDs()...)
	rc, err := c.s.SyscallConn()
	if err != nil {
		return c.mapErr("send", err)
	}
	var werr error
	sent := 0
	err = rc.Write(func(fd uintptr) bool {
		for sent < len(b) {
			var k int
			if sent == 0 {
				k, werr = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
			} else {
				k, werr = unix.SendmsgN(int(fd), b[sent:], nil, nil, unix.MSG_NOSIGNAL)
			}
			switch werr {
			case nil:
				sent += k
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return c.mapErr("send", err)
	}
	return nil
}

// recvRights reads from a unix socket, queueing any descriptors that come
// with the bytes.
func (c *Conn) recvRights(fd int, p []byte) (int, error) {
	if c.oob == nil {
		c.oob = make([]byte, unix.CmsgSpace(4*maxRights))
	}
	n, oobn, flags, _, err := unix.Recvmsg(fd, p, c.oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return 0, err
	}
	var got []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr == nil {
			for i := range msgs {
				if fds, err := unix.ParseUnixRights(&msgs[i]); err == nil {
					got = append(got, fds...)
				}
			}
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		// The kernel dropped descriptors: more than our buffer holds
		// (SCM_MAX_FD is 253, we take 250) or over RLIMIT_NOFILE. Which
		// message is short of them cannot be known, and a later message
		// would claim another's: stop reading, as Python's recvfds does.
		for _, fd := range got {
			unix.Close(fd)
		}
		c.rerr = fmt.Errorf("%w: the kernel dropped descriptors sent with a message (MSG_CTRUNC: too many in one message, or this process is out of descriptors)", ErrBadFrame)
		return 0, c.rerr
	}
	c.fdq = append(c.fdq, got...)
	return n, nil
}

// claimRights strips the handles mark from msg and returns the payload and
// the descriptors that belong to it. A message without the mark claims
// nothing (files is nil).
func (c *Conn) claimRights(msg []byte) ([]byte, *wire.Files) {
	if len(msg) < handlesMarkLen || msg[0] != 0xc1 || msg[1] != 'H' {
		return msg, nil
	}
	n := min(int(msg[2]), len(c.fdq))
	fds := append([]int(nil), c.fdq[:n]...)
	c.fdq = c.fdq[n:]
	return msg[handlesMarkLen:], wire.Received(fds)
}

// dropRights closes the descriptors of a marked message read as bytes.
func (c *Conn) dropRights(msg []byte) {
	_, files := c.claimRights(msg)
	files.Close()
}

// closeRights closes every queued descriptor (Close).
func (c *Conn) closeRights() {
	for _, fd := range c.fdq {
		unix.Close(fd)
	}
	c.fdq = nil
}

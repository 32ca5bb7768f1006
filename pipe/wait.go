package pipe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Poll reports whether a message (or end of file) can be read without
// blocking, waiting up to timeout for one. A zero or negative timeout returns
// at once, as Python's poll does.
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	if err := c.checkRead(); err != nil {
		return false, err
	}
	if c.buffered() {
		return true, nil
	}
	ready, err := pollFDs([]*Conn{c}, max(timeout, 0), -1)
	if err != nil {
		return false, err
	}
	return len(ready) > 0, nil
}

// Wait blocks until at least one of conns can be read without blocking and
// returns the ready ones (the same pointers, in argument order). It returns
// ctx's error if ctx ends first. Closed Conns are ready (their Recv returns
// ErrClosed at once).
func Wait(ctx context.Context, conns ...*Conn) ([]*Conn, error) {
	if len(conns) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var ready []*Conn
	for _, c := range conns {
		if c.closed.Load() || c.buffered() {
			ready = append(ready, c)
		}
	}
	if len(ready) > 0 {
		return ready, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Wake the poll through an eventfd when ctx ends.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pipe: wait: eventfd: %w", err)
	}
	fired := make(chan struct{})
	stop := afterFunc(ctx, func() {
		defer close(fired)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	defer func() {
		// If the function has started, let it finish before closing efd:
		// its write would otherwise go to whatever file reuses the number.
		if !stop() {
			<-fired
		}
		unix.Close(efd)
	}()
	ready, err = pollFDs(conns, -1, efd)
	if err != nil {
		return nil, err
	}
	if len(ready) == 0 {
		return nil, ctx.Err()
	}
	return ready, nil
}

// pollFDs polls conns (and extra, when >= 0) for input. A negative timeout
// waits forever. It returns the ready conns.
func pollFDs(conns []*Conn, timeout time.Duration, extra int) ([]*Conn, error) {
	pfds := make([]unix.PollFd, 0, len(conns)+1)
	for _, c := range conns {
		pfds = append(pfds, unix.PollFd{Fd: int32(c.fd()), Events: unix.POLLIN})
	}
	if extra >= 0 {
		pfds = append(pfds, unix.PollFd{Fd: int32(extra), Events: unix.POLLIN})
	}
	var ts *unix.Timespec
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if timeout >= 0 {
			t := unix.NsecToTimespec(max(time.Until(deadline), 0).Nanoseconds())
			ts = &t
		}
		n, err := unix.Ppoll(pfds, ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pipe: poll: %w", err)
		}
		if n == 0 {
			return nil, nil
		}
		var ready []*Conn
		for i, c := range conns {
			// POLLNVAL: closed under us; POLLHUP/POLLERR: Recv reports it.
			if pfds[i].Revents != 0 {
				ready = append(ready, c)
			}
		}
		return ready, nil
	}
}

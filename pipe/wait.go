//go:build linux

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
// at once, as Python's poll does. On a closed Conn, also one closed by
// another goroutine while Poll waits, it returns ErrClosed at once (Python's
// poll raises OSError there).
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	if err := c.checkRead(); err != nil {
		return false, err
	}
	if c.buffered() {
		return true, nil
	}
	var ready []*Conn
	var err error
	if timeout <= 0 {
		ready, err = pollFDs([]*Conn{c}, 0, -1)
	} else {
		ready, err = waitConns(context.Background(), []*Conn{c}, timeout)
	}
	if err != nil {
		return false, err
	}
	if c.closed.Load() {
		return false, ErrClosed
	}
	return len(ready) > 0, nil
}

// Wait blocks until at least one of conns can be read without blocking and
// returns the ready ones (the same pointers, in argument order). It returns
// ctx's error if ctx ends first.
//
// A closed Conn is ready, also one that another goroutine closes while Wait
// waits: Wait returns at once and the Conn's Recv reports ErrClosed.
// (Python's wait raises OSError for a closed connection instead; returning
// it lets the caller go on with the others.)
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
	ready, err := waitConns(ctx, conns, -1)
	if err != nil {
		return nil, err
	}
	if len(ready) == 0 {
		return nil, ctx.Err()
	}
	return ready, nil
}

// waitConns polls conns for input until one is ready, timeout passes (a
// negative timeout waits forever), ctx ends, or one of
// conns is closed. An eventfd beside the conns' descriptors wakes the poll
// for the last two: closing a descriptor does not wake a poll on it.
func waitConns(ctx context.Context, conns []*Conn, timeout time.Duration) ([]*Conn, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pipe: wait: eventfd: %w", err)
	}
	// Deferred calls run last to first: whatever may still write to efd
	// (Close, the ctx function) is done with it before it is closed, or
	// its write would go to whatever file reuses the number.
	defer unix.Close(efd)
	for i, c := range conns {
		if !c.addWaker(efd) {
			for _, d := range conns[:i] {
				d.removeWaker(efd)
			}
			return []*Conn{c}, nil
		}
	}
	defer func() {
		for _, c := range conns {
			c.removeWaker(efd)
		}
	}()
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := afterFunc(ctx, func() {
			defer close(fired)
			wake(efd)
		})
		defer func() {
			// If the function has started, let it finish first.
			if !stop() {
				<-fired
			}
		}()
	}
	return pollFDs(conns, timeout, efd)
}

// wake makes the eventfd fd readable.
func wake(fd int) {
	unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// pollFDs polls conns (and extra, when >= 0) for input. A negative timeout
// waits forever. It returns the ready conns: closed ones count as ready.
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
		_, err := unix.Ppoll(pfds, ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pipe: poll: %w", err)
		}
		var ready []*Conn
		for i, c := range conns {
			// POLLNVAL: closed under us; POLLHUP/POLLERR: Recv reports it.
			if pfds[i].Revents != 0 || c.closed.Load() {
				ready = append(ready, c)
			}
		}
		return ready, nil
	}
}

// addWaker registers the eventfd of a Wait or Poll in progress, for Close
// to wake. It reports false, registering nothing, if c is closed already.
func (c *Conn) addWaker(fd int) bool {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.wakers = append(c.wakers, fd)
	return true
}

func (c *Conn) removeWaker(fd int) {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	for i, w := range c.wakers {
		if w == fd {
			c.wakers = append(c.wakers[:i], c.wakers[i+1:]...)
			return
		}
	}
}

// wakeWaiters marks c closed and wakes the Waits and Polls in progress on
// it. Under wakeMu, so that a Wait either sees c closed or is woken.
func (c *Conn) wakeWaiters() {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	c.closed.Store(true)
	for _, fd := range c.wakers {
		wake(fd)
	}
}

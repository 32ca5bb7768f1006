//go:build linux

package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"golang.org/x/sys/unix"
)

var packetPool = sync.Pool{New: func() any { return new([qframe.PacketSize]byte) }}

// get takes one item and hands its encoding to decode. A small item is one
// packet and one read, with no lock: a reader killed at any instant has
// either taken the packet or not. A marker sends the reader to the chunk
// pipe for a large item (readLarge). The shared counts are settled after
// decode; an item that does not decode is taken all the same (and, in a
// Joinable, marked done), and the queue stays usable.
func (c *core) get(ctx context.Context, block bool, decode func([]byte) error) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.leave()
	s, err := c.ownSlot()
	if err != nil {
		return err
	}
	bufp := packetPool.Get().(*[qframe.PacketSize]byte)
	defer packetPool.Put(bufp)
	buf := bufp[:]
	var spinUntil time.Time
	for {
		// getPend covers the instant between taking a packet and settling
		// the counts: a process killed there is recovered by the others.
		s.getPend.Add(1)
		n, err := readPacket(c.mr, buf)
		if err == nil {
			c.noteRead()
			var item []byte
			large := false
			switch buf[0] {
			case qframe.KindItem:
				item = buf[1:n]
			case qframe.KindMarker:
				var ok bool
				item, ok, err = c.readLarge(ctx, buf[:n])
				if !ok {
					s.getPend.Add(-1)
					if err != nil {
						return err
					}
					continue // its item is gone (taken by another reader, or torn)
				}
				large = true
			default:
				s.getPend.Add(-1)
				return fmt.Errorf("queue: get: discarded a packet of unknown kind %d (%d bytes): not written by this package", buf[0], n)
			}
			derr := decode(item)
			if large {
				c.releaseItem(item) // decoding keeps no reference to it
			}
			c.taken(s, derr == nil)
			s.getPend.Add(-1)
			if derr != nil {
				return fmt.Errorf("queue: get: the item was taken but %w", derr)
			}
			return nil
		}
		s.getPend.Add(-1)
		if err != unix.EAGAIN {
			if err == ErrClosed {
				return err
			}
			return fmt.Errorf("queue: get: %w", err)
		}
		if !block {
			return ErrEmpty
		}
		if spinUntil.IsZero() && c.inFlight() {
			// Items are counted but not yet in the pipe: a producer is
			// writing them. Watching for a few microseconds is cheaper
			// than a sleep and a cross-CPU wake-up for each item.
			spinUntil = time.Now().Add(spinFor)
			if awaitReadable(c.mr, spinUntil) {
				continue
			}
		}
		// Sleep until the pipe is readable. No lock is held while asleep,
		// so a killed sleeper costs nothing.
		switch werr := c.pollWait(ctx, c.mr, unix.POLLIN, time.Second); werr {
		case nil:
		case errWoken:
			return ErrClosed
		default:
			return fmt.Errorf("queue: get: %w", werr)
		}
	}
}

// spinFor bounds how long a Get (or a flusher facing a full pipe) retries
// before it sleeps. On the virtual machines this was measured on, a sleep
// and the wake-up that ends it cost tens of microseconds, and a producer
// or consumer that is running frees the way within a few.
const spinFor = 20 * time.Microsecond

// awaitReadable polls fd without sleeping until it is readable or the
// deadline passes, and reports whether it became readable. A zero-timeout
// poll looks at the pipe without its mutex; retrying the read would take
// the mutex every time, and a writer filling the pipe would wait on it.
func awaitReadable(fd int, deadline time.Time) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && err != unix.EINTR || time.Now().After(deadline) {
			return false
		}
	}
}

// inFlight reports whether items are counted but not in the pipe yet.
func (c *core) inFlight() bool {
	return c.counted() && c.count().Load() > 0
}

// giveUp is how long a Get whose ctx has ended keeps reading a large item
// it has begun while the writer sends nothing more. Items are never left
// half-read for a deadline alone: the rest would be lost for everybody.
const giveUp = time.Second

// readLarge reads the large item a marker announced, holding the reader
// lock (lockR) so that its chunks come to this reader alone. It returns the
// item and true, or false when the marker's item is gone: taken by another
// reader (a rescuer after a stall), or torn because its writer died. Any
// whole item in the chunk pipe will do: which marker leads to which item
// does not matter, only that each item is taken once.
//
// While the chunk pipe is empty the reader waits only if lockW is held and
// the writer is at work on this marker's item (or the reader has part of an
// item). lockW is free when the writer finished or died: then whatever is in
// the pipe is all there will be, and a partial item is torn.
func (c *core) readLarge(ctx context.Context, marker []byte) ([]byte, bool, error) {
	m, err := qframe.ParseMarker(marker)
	if err != nil {
		return nil, false, fmt.Errorf("queue: get: discarded a bad marker: %w", err)
	}
	want := ident(m.Writer, m.Seq)
	if err := c.acquireR(ctx); err != nil {
		return nil, false, err
	}
	defer c.releaseR()
	// The assembler is this process's (rsem is held): its buffers are
	// reused, and so is the storage of the last item read, once decoded.
	asm := c.asm
	if asm == nil {
		asm = qframe.NewAssembler(MaxItemSize)
		c.asm = asm
	}
	asm.Reset()
	if b := c.keptItem(); b != nil {
		asm.Reuse(b)
	}
	// Each chunk is read straight into its place in the item (see
	// Assembler.Bufs). The clock is read only when the pipe is empty:
	// last is when this reader last found chunks.
	var last time.Time
	got, seen := 0, -1
	for {
		n, err := readPacketv(c.br, asm.Bufs())
		if err == nil {
			c.noteRead()
			got++
			if out, ev := asm.Filled(n); ev == qframe.Complete {
				return out, true, nil
			}
			continue
		}
		if err != unix.EAGAIN {
			return nil, false, fmt.Errorf("queue: get: %w", err)
		}
		if got != seen {
			seen, last = got, time.Now()
		}
		if ofdHeld(c.seg.FD(), lockW) && (asm.Active() || uint64(c.seg.Int64(offWriting).Load()) == want) {
			// The writer is at work. The reader sleeps until the pipe is
			// readable, without first watching it for a few microseconds
			// as Get does for small items: the writer is behind because
			// it waits for a CPU (encoding, decoding and the other
			// consumers share them), and a reader spinning meanwhile
			// took that CPU (measured: 5% slower on two cores).
			wctx := ctx
			if asm.Active() {
				// Part of an item is ours: finish it while its writer
				// makes progress, deadline or not.
				if ctx.Err() != nil && time.Since(last) > giveUp {
					return nil, false, fmt.Errorf("queue: get: %w (a large item in progress was dropped: its writer sent nothing for %v)", ctx.Err(), giveUp)
				}
				wctx = context.WithoutCancel(ctx)
			}
			switch werr := c.pollWait(wctx, c.br, unix.POLLIN, 20*time.Millisecond); werr {
			case nil:
			case errWoken:
				return nil, false, ErrClosed
			default:
				// Nothing of the item is taken: it stays for another
				// reader, whom its writer will send a fresh marker.
				return nil, false, fmt.Errorf("queue: get: %w", werr)
			}
			continue
		}
		// No writer at work on what we wait for. Look once more: the
		// writer may have finished between the read and the lock check.
		if n, err = readPacketv(c.br, asm.Bufs()); err == nil {
			c.noteRead()
			got++
			if out, ev := asm.Filled(n); ev == qframe.Complete {
				return out, true, nil
			}
			continue
		}
		return nil, false, nil
	}
}

// acquireR takes the reader lock: the in-process half first (a goroutine of
// this process may hold the OFD lock, which does not exclude the process
// itself), then the OFD lock byte, which the kernel frees if this process
// dies holding it.
func (c *core) acquireR(ctx context.Context) error {
	select {
	case c.rsem <- struct{}{}:
	default:
		select {
		case c.rsem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("queue: get: %w", ctx.Err())
		case <-c.closing:
			return ErrClosed
		}
	}
	d := 20 * time.Microsecond
	for {
		ok, err := ofdTryLock(c.lockFD, lockR)
		if ok {
			return nil
		}
		if err != nil {
			<-c.rsem
			return fmt.Errorf("queue: get: reader lock: %w", err)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			<-c.rsem
			return fmt.Errorf("queue: get: %w", ctx.Err())
		case <-c.closing:
			t.Stop()
			<-c.rsem
			return ErrClosed
		}
		d = min(2*d, 2*time.Millisecond)
	}
}

func (c *core) releaseR() {
	ofdUnlock(c.lockFD, lockR)
	<-c.rsem
}

// noteRead counts a packet or chunk read: producers waiting for room in
// their backlog tell from it that readers are alive (see waitRoom).
func (c *core) noteRead() {
	if c.counted() {
		c.reads().Add(1)
	}
}

// readable reports whether the main pipe has a packet (Simple's Empty).
func (c *core) readable() bool {
	fds := []unix.PollFd{{Fd: int32(c.mr), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

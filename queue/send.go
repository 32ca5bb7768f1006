package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"github.com/mpgo/multiprocessing/internal/shm"
	"golang.org/x/sys/unix"
)

// outItem is an item waiting in this process's outbox for the flusher.
type outItem struct {
	pkt   []byte // small: the whole packet; large: the encoded item
	large bool
	// Simple's synchronous Put waits on done and may cancel an item the
	// flusher has not started.
	done     chan error
	started  bool // set by the flusher (under smu) when it takes the item
	canceled atomic.Bool
}

// errCanceled: the flusher dropped an item its Put gave up on.
var errCanceled = errors.New("queue: put canceled")

// errAbandoned: Close gave up flushing.
var errAbandoned = errors.New("queue: flush abandoned")

func wakeAll(w *atomic.Uint32) { shm.Wake(w, 1<<30) }

// put enqueues one encoded item. pkt is the packet (kind byte and encoding)
// when small, the encoding alone when large; it is copied if kept. Queue and
// Joinable return once the item is written or buffered; Simple (sync) waits
// until it is written or ctx ends.
func (c *core) put(ctx context.Context, pkt []byte, large, block bool) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.leave()
	s, err := c.ownSlot()
	if err != nil {
		return err
	}
	if err := c.reserve(ctx, s, block); err != nil {
		if err == ErrFull {
			return err
		}
		if err == ErrClosed {
			return err
		}
		return fmt.Errorf("queue: put: %w", err)
	}
	c.smu.Lock()
	if !large && !c.flushing && len(c.outbox) == 0 {
		// The fast path: the pipe has room and nothing of ours is
		// waiting, so the item is in the pipe when Put returns.
		err := writePacket(c.mw, pkt)
		if err == nil {
			c.smu.Unlock()
			s.putPend.Add(-1)
			return nil
		}
		if err != unix.EAGAIN {
			c.smu.Unlock()
			c.unreserve(s)
			return fmt.Errorf("queue: put: %w", err)
		}
	}
	it := &outItem{pkt: append([]byte(nil), pkt...), large: large}
	if c.kind == kindSimple {
		it.done = make(chan error, 1)
	}
	c.outbox = append(c.outbox, it)
	c.startFlusherLocked()
	c.smu.Unlock()
	if it.done == nil {
		return nil
	}
	select {
	case err := <-it.done:
		return wrapPut(err)
	case <-ctx.Done():
	case <-c.closing:
	}
	// Give up: drop the item if the flusher has not started it, else ask it
	// to stop and wait for the verdict (a large item stops at once and is
	// left torn; a small one is a single write).
	c.smu.Lock()
	if !it.started {
		for i, o := range c.outbox {
			if o == it {
				c.outbox = append(c.outbox[:i], c.outbox[i+1:]...)
				break
			}
		}
		c.smu.Unlock()
		c.unreserve(s)
		if ctx.Err() != nil {
			return fmt.Errorf("queue: put: %w", ctx.Err())
		}
		return ErrClosed
	}
	c.smu.Unlock()
	it.canceled.Store(true)
	err = <-it.done
	if err == errCanceled {
		if ctx.Err() != nil {
			return fmt.Errorf("queue: put: %w", ctx.Err())
		}
		return ErrClosed
	}
	return wrapPut(err) // it was written after all
}

func wrapPut(err error) error {
	if err == nil || err == ErrClosed {
		return err
	}
	return fmt.Errorf("queue: put: %w", err)
}

func (c *core) startFlusherLocked() {
	if c.flushing {
		return
	}
	c.flushing = true
	if c.kind != kindSimple && !c.registry {
		c.registry = true
		registerPending(c)
	}
	go c.flusher()
}

// flusher writes the outbox in order, waiting for room as long as it takes,
// and keeps the writer lock until the chunk pipe is drained after a large
// item. It exits when there is nothing left, or when Close abandons the
// flush.
func (c *core) flusher() {
	s := c.slot.Load()
	for {
		c.smu.Lock()
		if len(c.outbox) == 0 {
			if c.draining && !c.abandon.Load() {
				c.smu.Unlock()
				c.finishDrain()
				continue
			}
			c.flushing = false
			c.smu.Unlock()
			return
		}
		it := c.outbox[0]
		it.started = true
		c.smu.Unlock()

		err := c.writeItem(it)
		if err == errAbandoned {
			c.smu.Lock()
			c.flushing = false
			c.smu.Unlock()
			if c.wHeld {
				c.releaseW()
			}
			return
		}
		c.smu.Lock()
		c.outbox[0] = nil
		c.outbox = c.outbox[1:]
		if len(c.outbox) == 0 {
			c.outbox = nil
		}
		c.smu.Unlock()
		switch err {
		case nil:
			s.putPend.Add(-1)
		case errCanceled:
			c.unreserve(*s)
		default:
			// A pipe error (the descriptors are gone): the item is lost;
			// uncount it so that the queue does not shrink.
			c.unreserve(*s)
		}
		c.written.Add(1)
		if it.done != nil {
			it.done <- err
		}
	}
}

// writeItem writes one item, waiting for room. It returns nil once the item
// is entirely in the pipes.
func (c *core) writeItem(it *outItem) error {
	if !it.large {
		for {
			if c.draining {
				c.checkDrain()
			}
			err := writePacket(c.mw, it.pkt)
			if err != unix.EAGAIN {
				return err
			}
			if c.abandon.Load() {
				return errAbandoned
			}
			if it.canceled.Load() {
				return errCanceled
			}
			c.waitFor(c.mw, unix.POLLOUT)
		}
	}
	return c.writeLarge(it)
}

// waitFor sleeps until fd has events or a short while passed: the writer
// re-checks abandonment, cancellation and the drain state between sleeps.
func (c *core) waitFor(fd int, events int16) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	_, _ = unix.Poll(fds, 20)
}

// drainState tracks the chunk pipe while this process holds lockW.
type drainState struct {
	marker []byte    // the marker of the item being written
	bytes  int       // unread bytes last seen
	since  time.Time // when they last changed
}

// stallAfter is how long a large item's chunks may sit untouched before its
// writer announces it again. Its first marker may have been taken by a
// reader that died or gave up before reading it; a fresh marker sends
// another reader (readers treat a marker whose item is gone as void).
const stallAfter = 100 * time.Millisecond

// stallCheck re-announces the large item when nobody took a chunk for
// stallAfter.
func (c *core) stallCheck() {
	b := pipeBytes(c.br)
	now := time.Now()
	if b != c.drain.bytes || b == 0 {
		c.drain.bytes, c.drain.since = b, now
		return
	}
	if now.Sub(c.drain.since) > stallAfter {
		_ = writePacket(c.mw, c.drain.marker)
		c.drain.since = now
	}
}

// checkDrain releases lockW once the chunk pipe is empty.
func (c *core) checkDrain() {
	if pipeBytes(c.br) == 0 {
		c.draining = false
		c.releaseW()
		return
	}
	c.stallCheck()
}

// finishDrain waits for the chunk pipe to empty, then releases lockW.
func (c *core) finishDrain() {
	d := 50 * time.Microsecond
	for c.draining && !c.abandon.Load() {
		c.checkDrain()
		if !c.draining {
			return
		}
		time.Sleep(d)
		d = min(2*d, 5*time.Millisecond)
	}
}

func (c *core) releaseW() {
	c.seg.Int64(offWriting).Store(0)
	c.wHeld = false
	ofdUnlock(c.lockFD, lockW)
}

// writeLarge writes a large item: it takes lockW, publishes the item's
// ident, writes the marker into the main pipe and the chunks into the chunk
// pipe. lockW stays held (draining) until the chunk pipe is empty, so that
// the chunk pipe holds one item at a time and a reader can tell "more
// chunks are coming" (lockW held, its item) from "nothing is coming" (lockW
// free: the writer finished or died).
func (c *core) writeLarge(it *outItem) error {
	d := 20 * time.Microsecond
	for {
		if c.draining {
			c.finishDrain()
		}
		if c.abandon.Load() {
			return errAbandoned
		}
		if it.canceled.Load() {
			return errCanceled
		}
		if !c.wHeld {
			ok, err := ofdTryLock(c.lockFD, lockW)
			if err != nil {
				return err
			}
			c.wHeld = ok
		}
		if c.wHeld {
			break
		}
		time.Sleep(d)
		d = min(2*d, 2*time.Millisecond)
	}
	c.seq++
	size := uint64(len(it.pkt))
	count := qframe.Chunks(size)
	c.seg.Int64(offWriting).Store(int64(ident(c.writer, c.seq)))
	marker := qframe.AppendMarker(make([]byte, 0, qframe.MarkerLen), qframe.Marker{Writer: c.writer, Seq: c.seq, Size: size, Count: uint32(count)})
	c.drain = drainState{marker: marker, bytes: -1, since: time.Now()}
	// abort leaves the item torn: readers see lockW free with the item
	// incomplete and discard it.
	abort := func(err error) error {
		c.releaseW()
		return err
	}
	for {
		err := writePacket(c.mw, marker)
		if err == nil {
			break
		}
		if err != unix.EAGAIN {
			return abort(err)
		}
		if c.abandon.Load() {
			return abort(errAbandoned)
		}
		if it.canceled.Load() {
			return abort(errCanceled)
		}
		c.waitFor(c.mw, unix.POLLOUT)
	}
	var pkt [qframe.PacketSize]byte
	for i := uint64(0); i < count; i++ {
		lo := i * qframe.ChunkData
		hi := min(lo+qframe.ChunkData, size)
		n := qframe.PutChunk(pkt[:], qframe.Chunk{Writer: c.writer, Seq: c.seq, Size: size, Index: uint32(i), Count: uint32(count), Data: it.pkt[lo:hi]})
		for {
			err := writePacket(c.bw, pkt[:n])
			if err == nil {
				break
			}
			if err != unix.EAGAIN {
				return abort(err)
			}
			if c.abandon.Load() {
				return abort(errAbandoned)
			}
			if it.canceled.Load() {
				return abort(errCanceled)
			}
			c.stallCheck()
			c.waitFor(c.bw, unix.POLLOUT)
		}
	}
	c.draining = true
	c.drain.bytes, c.drain.since = -1, time.Now()
	return nil
}

//go:build linux

package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"github.com/mpgo/multiprocessing/internal/shm"
	"golang.org/x/sys/unix"
)

// outEntry is an item waiting in this process's outbox for the flusher.
type outEntry struct {
	pkt   []byte // small: the whole packet (in an arena chunk); large: the encoded item
	large bool
	enc   *bytes.Buffer // large: the buffer pkt lives in, released once written
	sp    *syncPut      // Simple's synchronous Put waits on it; nil otherwise
}

// syncPut is how a synchronous Put (Simple) and the flusher agree on an
// item's fate: the flusher moves it from queued to started before writing
// it, the Put from queued to canceled when its ctx ends first.
type syncPut struct {
	state    atomic.Int32 // spQueued, spStarted, spCanceled
	canceled atomic.Bool  // the Put gave up while the item was being written
	done     chan error
}

const (
	spQueued int32 = iota
	spStarted
	spCanceled
)

// arenaSize is the chunk small buffered packets are packed into: no
// allocation per buffered item, which matters when a fast producer buffers
// hundreds of thousands of them.
const arenaSize = 64 << 10

// errCanceled: the flusher dropped an item its Put gave up on.
var errCanceled = errors.New("queue: put canceled")

// errAbandoned: Close gave up flushing.
var errAbandoned = errors.New("queue: flush abandoned")

func wakeAll(w *atomic.Uint32) { shm.Wake(w, 1<<30) }

// put enqueues one encoded item. pkt is the packet (kind byte and encoding)
// when small, the encoding alone when large (then it is kept, not copied).
// pkt lives in buf, which put takes over: released when put returns, or,
// for a large item that is queued, once the item is written.
// Queue and Joinable return once the item is written or buffered; Simple
// waits until it is written or ctx ends.
func (c *core) put(ctx context.Context, pkt []byte, buf *bytes.Buffer, large, block bool) error {
	kept := false
	defer func() {
		if !kept {
			c.releaseEnc(buf)
		}
	}()
	if !c.enter() {
		return ErrClosed
	}
	defer c.leave()
	s, err := c.ownSlot()
	if err != nil {
		return err
	}
	if err := c.reserve(ctx, s, block); err != nil {
		if err == ErrFull || err == ErrClosed {
			return err
		}
		return fmt.Errorf("queue: put: %w", err)
	}
	c.smu.Lock()
	if !large && !c.flushing {
		// No flusher: earlier items of ours that found the pipe full
		// (direct mode, below) go first.
		c.writeHeadsLocked(s)
	}
	if !large && !c.flushing && len(c.outbox) == 0 {
		// The fast path: the pipe has room and nothing of ours is
		// waiting, so the item is in the pipe when Put returns.
		if done, err := c.writeNowLocked(s, pkt); done {
			return err
		}
	}
	if !large && !c.flushing && c.kind != kindSimple {
		// Direct mode: the pipe is full and no flusher runs. The item
		// is buffered, and written by this process's next Put, by this
		// Put while the backlog is at its bound, or by a flusher that
		// starts if no Put comes for kickAfter.
		err := c.waitRoomDirectLocked(ctx, s, block)
		if err != nil {
			c.smu.Unlock()
			c.unreserve(s)
			if err == ErrClosed || errors.Is(err, ErrFull) {
				return err
			}
			return fmt.Errorf("queue: put: %w", err)
		}
		if !c.flushing {
			if len(c.outbox) == 0 {
				// Room was made while waiting: write it now, keeping
				// the fast path's promise when the pipe has room.
				if done, err := c.writeNowLocked(s, pkt); done {
					return err
				}
			}
			c.bufferLocked(pkt)
			c.armKickLocked()
			c.smu.Unlock()
			return nil
		}
		// A flusher started meanwhile (a large item, a stall, a
		// flush): the item joins its outbox.
	}
	if !c.flushing && len(c.outbox) > 0 {
		// A large item behind a direct-mode backlog: the flusher takes
		// both, and the bound applies as below.
		c.startFlusherLocked()
	}
	if c.kind != kindSimple {
		if err := c.waitRoomLocked(ctx, block); err != nil {
			c.smu.Unlock()
			c.unreserve(s)
			if err == ErrClosed || errors.Is(err, ErrFull) {
				return err
			}
			return fmt.Errorf("queue: put: %w", err)
		}
	}
	var e outEntry
	if large {
		e = outEntry{pkt: pkt, large: true, enc: buf}
		kept = true
		c.outbox = append(c.outbox, e)
		c.pendingOut.Add(1)
		c.pendingBytes.Add(int64(len(e.pkt)))
	} else {
		e = c.bufferLocked(pkt)
	}
	if c.kind == kindSimple {
		e.sp = &syncPut{done: make(chan error, 1)}
		c.outbox[len(c.outbox)-1].sp = e.sp
	}
	c.startFlusherLocked()
	c.smu.Unlock()
	if e.sp == nil {
		return nil
	}
	select {
	case err := <-e.sp.done:
		return wrapPut(err)
	case <-ctx.Done():
	case <-c.closing:
	}
	giveUp := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("queue: put: %w", ctx.Err())
		}
		return ErrClosed
	}
	if e.sp.state.CompareAndSwap(spQueued, spCanceled) {
		// The flusher will skip it (and uncount it).
		return giveUp()
	}
	// Being written: a large item stops at once and is left torn, a small
	// one is a single write. Wait for the verdict.
	e.sp.canceled.Store(true)
	if err := <-e.sp.done; err != errCanceled {
		return wrapPut(err) // it was written after all
	}
	return giveUp()
}

// writeNowLocked writes a small packet into the pipe if it has room (smu
// held). done: the Put is over, smu released, with err; otherwise the pipe
// was full and nothing changed.
func (c *core) writeNowLocked(s slot, pkt []byte) (done bool, err error) {
	err = writePacket(c.mw, pkt)
	if err == unix.EAGAIN {
		return false, nil
	}
	c.smu.Unlock()
	if err != nil {
		c.unreserve(s)
		return true, fmt.Errorf("queue: put: %w", err)
	}
	s.putPend.Add(-1)
	return true, nil
}

// bufferLocked appends a small packet to the outbox, copied into the
// arena, and counts it in the backlog.
func (c *core) bufferLocked(pkt []byte) outEntry {
	if cap(c.arena)-len(c.arena) < len(pkt) {
		c.arena = make([]byte, 0, arenaSize)
	}
	n := len(c.arena)
	c.arena = append(c.arena, pkt...)
	e := outEntry{pkt: c.arena[n:len(c.arena):len(c.arena)]}
	c.outbox = append(c.outbox, e)
	c.pendingOut.Add(1)
	c.pendingBytes.Add(int64(len(e.pkt)))
	return e
}

// Direct mode. When the pipe is full, a producer that keeps putting writes
// its backlog itself, in its own goroutine: each Put first writes what the
// pipe takes of the backlog, without waiting, and a Put that finds the
// backlog at its bound waits for readers and writes. A flusher goroutine
// would do the same work on a second thread and hand the Put its room
// through the scheduler (a wake-up per half bound, a sleep and a wake-up
// of an OS thread each time: about a tenth of a fast producer's time). A timer
// starts a flusher when no Put came for kickAfter, so that a backlog is
// written whether or not the process puts again; Flush, Close and the exit
// work start one at once.

// kickAfter is how long a direct-mode backlog may wait for the next Put
// before a flusher takes it over. The pipe was full when the backlog
// began: readers have 256 items to take first.
const kickAfter = 200 * time.Microsecond

// writeHeadsLocked writes the oldest buffered items while the pipe takes
// them, without waiting (direct mode: no flusher runs, and smu is held).
func (c *core) writeHeadsLocked(s slot) {
	if len(c.outbox) == 0 {
		return
	}
	reads := c.reads().Load()
	if reads == c.fullAt {
		// No packet was read since the pipe was found full: it still
		// is. Trying would take the pipe's mutex against the readers.
		return
	}
	k := 0
	for k < len(c.outbox) {
		e := &c.outbox[k]
		err := writePacket(c.mw, e.pkt)
		if err == unix.EAGAIN {
			c.fullAt = reads
			break
		}
		if err == nil {
			s.putPend.Add(-1)
		} else {
			// The descriptors are gone: uncount the item (as the
			// flusher does) so that the queue does not shrink.
			c.unreserve(s)
		}
		c.pendingOut.Add(-1)
		c.pendingBytes.Add(-int64(len(e.pkt)))
		c.written.Add(1)
		k++
	}
	if k == 0 {
		return
	}
	n := copy(c.outbox, c.outbox[k:])
	clear(c.outbox[n:])
	c.outbox = c.outbox[:n]
	if n == 0 {
		c.arena = c.arena[:0]
	}
	c.putSeq++
}

// waitRoomDirectLocked waits, smu held (released while asleep), until this
// process's backlog is below its bound, writing it as readers make room,
// or until no process has read the queue for PutStall (then the backlog
// goes to a flusher and grows, as in waitRoomLocked). It returns at once
// when a flusher starts meanwhile. block false: ErrFull instead of waiting.
func (c *core) waitRoomDirectLocked(ctx context.Context, s slot, block bool) error {
	reads := c.reads()
	mark, since := reads.Load(), time.Now()
	for !c.flushing && c.backlogFull() {
		if m := c.stallMark.Load(); m >= 0 && reads.Load() == m {
			c.startFlusherLocked()
			return nil // nobody has read since the stall was seen
		}
		if !block {
			return c.errBacklogFull()
		}
		c.smu.Unlock()
		var err error
		slept := !c.awaitReads()
		if slept {
			left := PutStall - time.Since(since)
			err = c.pollWait(ctx, c.mw, unix.POLLOUT, max(left, 0)+time.Millisecond)
		}
		c.smu.Lock()
		if slept {
			c.fullAt = -1 // after a sleep, try the pipe itself
		}
		switch {
		case err == errWoken:
			return ErrClosed
		case err != nil:
			return err
		}
		if r := reads.Load(); r != mark {
			mark, since = r, time.Now()
		} else if time.Since(since) >= PutStall {
			c.stallMark.Store(mark)
			continue
		}
		if !c.flushing {
			c.writeHeadsLocked(s)
		}
	}
	return nil
}

// armKickLocked makes sure a flusher takes the direct-mode backlog over if
// no Put writes it within kickAfter (see kick).
func (c *core) armKickLocked() {
	c.putSeq++
	if c.kickArmed {
		return
	}
	c.kickArmed = true
	c.kickSeq = c.putSeq
	if c.kickTimer == nil {
		c.kickTimer = time.AfterFunc(kickAfter, c.kick)
	} else {
		c.kickTimer.Reset(kickAfter)
	}
	if !c.registry {
		c.registry = true
		registerPending(c)
	}
	armExitHook()
}

// kick starts a flusher for a direct-mode backlog, unless Puts are at work
// on it (then it looks again later).
func (c *core) kick() {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.kickArmed = false
	if c.closed.Load() || c.flushing || len(c.outbox) == 0 {
		return // Close flushes what is left
	}
	if c.putSeq != c.kickSeq {
		c.kickArmed = true
		c.kickSeq = c.putSeq
		c.kickTimer.Reset(kickAfter)
		return
	}
	c.startFlusherLocked()
}

func wrapPut(err error) error {
	if err == nil || err == ErrClosed {
		return err
	}
	return fmt.Errorf("queue: put: %w", err)
}

// MaxUnwritten and MaxUnwrittenBytes bound what a process holds of the
// items it put to a Queue or Joinable and has not yet written to the pipe
// (when the pipe is full, or while its items over 4 KiB wait their turn):
// a Put waits while the process holds MaxUnwritten items or
// MaxUnwrittenBytes bytes, until it holds half as much (TryPut returns an
// error matching ErrFull instead). This is what a producer killed at any
// instant can lose: at most MaxUnwritten items, and MaxUnwrittenBytes bytes
// plus one item.
//
// The bound holds while readers take items. When no process has read the
// queue for PutStall, Put buffers without waiting (as Python's put, which
// never blocks), so that a process that reads its own queue later, or
// whose readers start late, is not deadlocked; it waits again once a
// reader takes something. Items it could not write by the time it exits
// are reported (ErrNotFlushed), never lost in silence.
const (
	MaxUnwritten      = 64
	MaxUnwrittenBytes = 256 << 10
	PutStall          = 250 * time.Millisecond
)

func (c *core) backlogFull() bool {
	return c.pendingOut.Load() >= MaxUnwritten || c.pendingBytes.Load() >= MaxUnwrittenBytes
}

// waitRoomLocked waits, smu held (released while asleep), until this
// process's backlog is below its bound, or no process reads (see
// MaxUnwritten). block false: ErrFull instead of waiting.
func (c *core) waitRoomLocked(ctx context.Context, block bool) error {
	reads := c.reads()
	for c.flushing && c.backlogFull() {
		if m := c.stallMark.Load(); m >= 0 && reads.Load() == m {
			return nil // nobody has read since the stall was seen
		}
		if !block {
			return c.errBacklogFull()
		}
		// The channel is installed before the last check: a flusher that
		// makes room after the check closes it.
		ch := c.room.Load()
		if ch == nil {
			nc := make(chan struct{})
			if !c.room.CompareAndSwap(nil, &nc) {
				continue
			}
			ch = &nc
		}
		if !c.backlogFull() {
			return nil
		}
		mark := reads.Load()
		c.smu.Unlock()
		t := time.NewTimer(PutStall)
		var err error
		select {
		case <-*ch:
		case <-t.C:
			if reads.Load() == mark {
				c.stallMark.Store(mark)
			}
		case <-ctx.Done():
			err = ctx.Err()
		case <-c.closing:
			err = ErrClosed
		}
		t.Stop()
		c.smu.Lock()
		if err != nil {
			return err
		}
	}
	return nil
}

// errBacklogFull is TryPut's answer while this process's backlog is at its
// bound.
func (c *core) errBacklogFull() error {
	return fmt.Errorf("queue: %d items put by this process are waiting for room in the pipe: %w", c.pendingOut.Load(), ErrFull)
}

// wakeRoom wakes the Puts waiting for room once the backlog is down to
// half its bound (or empty): they do not wake for every item written.
func (c *core) wakeRoom() {
	p := c.room.Load()
	if p == nil {
		return
	}
	if c.pendingOut.Load() > MaxUnwritten/2 || c.pendingBytes.Load() > MaxUnwrittenBytes/2 {
		return
	}
	if c.room.CompareAndSwap(p, nil) {
		close(*p)
	}
}

func (c *core) startFlusherLocked() {
	if c.flushing {
		return
	}
	c.flushing = true
	if c.kind != kindSimple {
		if !c.registry {
			c.registry = true
			registerPending(c)
		}
		armExitHook()
	}
	go c.flusher()
}

// flusher writes the outbox in order, waiting for room as long as it takes,
// and keeps the writer lock until the chunk pipe is drained after a large
// item. It takes the outbox a batch at a time, so that a producer appending
// and the flusher writing meet on the mutex once per batch, not per item.
// It exits when there is nothing left, or when Close abandons the flush.
func (c *core) flusher() {
	s := c.slot.Load()
	c.smu.Lock()
	batch := c.spare
	c.spare = nil
	c.smu.Unlock()
	for {
		c.smu.Lock()
		if len(c.outbox) == 0 {
			if c.draining && !c.abandon.Load() {
				c.smu.Unlock()
				c.finishDrain(true)
				continue
			}
			c.settle()
			c.flushing = false
			// Everything buffered is written: the arena and the batch
			// are free for the next time the pipe fills. Keeping them
			// spares a 64 KiB allocation (and its page faults) each
			// time a producer at its consumer's pace fills the pipe.
			c.arena = c.arena[:0]
			c.spare = batch[:0]
			c.smu.Unlock()
			return
		}
		batch, c.outbox = c.outbox, batch[:0]
		c.smu.Unlock()
		for i := range batch {
			e := &batch[i]
			err := errCanceled
			if e.sp == nil || e.sp.state.CompareAndSwap(spQueued, spStarted) {
				err = c.writeEntry(e)
			}
			if err == errAbandoned {
				// Put the rest back for Close to count.
				c.settle()
				c.smu.Lock()
				c.outbox = append(batch[i:], c.outbox...)
				c.flushing = false
				c.smu.Unlock()
				if c.wHeld {
					c.releaseW()
				}
				return
			}
			switch err {
			case nil:
				s.putPend.Add(-1)
			default:
				// Canceled, or a pipe error (the descriptors are gone):
				// uncount the item so that the queue does not shrink.
				c.unreserve(*s)
			}
			c.unsettled++
			c.unsettledBytes += int64(len(e.pkt))
			if e.sp != nil {
				c.settle()
				e.sp.done <- err
			}
			if e.enc != nil {
				c.releaseEnc(e.enc)
			}
			*e = outEntry{}
		}
		c.settle()
	}
}

// settle takes the items written since the last call out of this
// process's backlog counts and wakes the Puts waiting for room. The
// flusher settles once per batch and before every wait, not per item: the
// counts are shared with the putting goroutine, and touching them for each
// item made the two threads trade their cache line for every item. Until
// settled, the backlog counts items already written: a Put may wait
// slightly longer, the bound never loosens.
func (c *core) settle() {
	if c.unsettled == 0 {
		return
	}
	c.pendingOut.Add(-c.unsettled)
	c.pendingBytes.Add(-c.unsettledBytes)
	c.written.Add(uint64(c.unsettled))
	c.unsettled, c.unsettledBytes = 0, 0
	c.wakeRoom()
}

// writeEntry writes one item, waiting for room. It returns nil once the
// item is entirely in the pipes.
func (c *core) writeEntry(it *outEntry) error {
	if it.large {
		c.settle() // writeLarge may wait long for its turn
		return c.writeLarge(it)
	}
	c.checkDraining()
	return c.writeRetry(c.mw, it.pkt, nil, it, c.checkDraining)
}

// checkDraining releases lockW once the chunk pipe behind the last large
// item is empty; small items are written meanwhile.
func (c *core) checkDraining() {
	if c.draining {
		c.checkDrain()
	}
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
// stallAfter. A chunk written since the last check is progress too (a
// reader taking one chunk and the writer adding one leaves the byte count
// unchanged).
func (c *core) stallCheck() {
	b := pipeBytes(c.br)
	now := time.Now()
	if b != c.drain.bytes || b == 0 || c.drain.since.IsZero() {
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

// finishDrain waits for the chunk pipe to empty, then releases lockW. With
// orBuffered it also returns when new items are buffered: small ones can be
// written while the large one drains (their packets queue up behind its
// marker anyway).
func (c *core) finishDrain(orBuffered bool) {
	d := 50 * time.Microsecond
	for c.draining && !c.abandon.Load() {
		c.checkDrain()
		if !c.draining || orBuffered && c.pendingOut.Load() > 0 {
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
func (c *core) writeLarge(it *outEntry) error {
	d := 20 * time.Microsecond
	for {
		if c.draining {
			c.finishDrain(false) // one large item at a time
		}
		if c.abandon.Load() {
			return errAbandoned
		}
		if it.canceledWhileWriting() {
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
	if err := c.writeRetry(c.mw, marker, nil, it, nil); err != nil {
		return abort(err)
	}
	// Each chunk is its header and a slice of the item, written together
	// (writev): the item is copied once, into the pipe.
	hdr := &c.chunkHdr
	stall := c.stallCheck
	for i := uint64(0); i < count; i++ {
		lo := i * qframe.ChunkData
		hi := min(lo+qframe.ChunkData, size)
		qframe.PutChunkHeader(hdr, qframe.Chunk{Writer: c.writer, Seq: c.seq, Size: size, Index: uint32(i), Count: uint32(count)})
		if err := c.writeRetry(c.bw, hdr[:], it.pkt[lo:hi], it, stall); err != nil {
			return abort(err)
		}
		c.drain.since = time.Time{} // progress
	}
	c.draining = true
	c.drain.bytes, c.drain.since = -1, time.Now()
	return nil
}

// writeRetry writes packet p (followed by data, when not nil: a chunk's
// header and data) to fd: the one write path of the flusher, for small
// items, markers and chunks alike. While the pipe is full it
// waits for room as long as the item is still wanted (errAbandoned or
// errCanceled when it no longer is). waiting, when not nil, runs before
// each wait.
//
// A full pipe is first waited out without system calls (see awaitReads):
// retrying the write would take the pipe's mutex against the reader at
// every attempt, and writing again as soon as one packet is free would
// wake the writer, or make it write, once per item read.
func (c *core) writeRetry(fd int, p, data []byte, it *outEntry, waiting func()) error {
	var spinUntil time.Time
	for {
		var err error
		if data == nil {
			err = writePacket(fd, p)
		} else {
			err = writePacket2(fd, p, data)
		}
		if err != unix.EAGAIN {
			return err
		}
		if c.abandon.Load() {
			return errAbandoned
		}
		if it.canceledWhileWriting() {
			return errCanceled
		}
		c.settle()
		if waiting != nil {
			waiting()
		}
		if c.counted() {
			if c.awaitReads() {
				continue
			}
		} else {
			// Simple counts no reads: retry the write briefly instead.
			now := time.Now()
			if spinUntil.IsZero() {
				spinUntil = now.Add(spinFor)
			}
			if now.Before(spinUntil) {
				continue
			}
			spinUntil = time.Time{}
		}
		c.waitFor(fd, unix.POLLOUT)
	}
}

// roomBatch is how many packets a writer facing a full pipe lets readers
// take before it writes again: it then writes that many in a row, and the
// pipe, which holds 256, never runs dry meanwhile.
const roomBatch = 16

// awaitReads watches the queue's shared read count (every packet or chunk
// read adds one) for at most spinFor, until readers took roomBatch packets.
// It reports whether they took any: false means the readers are asleep or
// slow, and the writer should sleep until the pipe has room.
func (c *core) awaitReads() bool {
	r := c.reads()
	start := r.Load()
	deadline := time.Now().Add(spinFor)
	for i := 1; ; i++ {
		n := r.Load() - start
		if n >= roomBatch {
			return true
		}
		if i%64 == 0 && time.Now().After(deadline) {
			return n > 0
		}
	}
}

func (e *outEntry) canceledWhileWriting() bool { return e.sp != nil && e.sp.canceled.Load() }

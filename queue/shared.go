//go:build linux

package queue

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// The shared state of a queue is one memfd segment (internal/shm) mapped by
// every process that holds the queue. It has no name anywhere, so nothing is
// left behind when the last holder closes it or dies.
//
// Counters are shared words updated with atomic instructions. A process
// killed between a system call and the counter update that goes with it
// would leave them wrong forever (Python's queues have exactly this problem:
// a killed getter leaks a semaphore unit and the queue shrinks). So each
// process also keeps, in a slot of its own, the counts whose fate a death
// would leave uncertain; a process that finds a slot whose owner is dead
// (its OFD lock byte is free) takes those counts back out of the shared
// words. Every uncertain case is settled on the side that cannot wedge the
// queue: a death may leave Len one too low and admit one item over maxsize,
// never shrink the queue or hang Join.
const (
	segMagic = 0x6d707131 // "mpq1"

	// Line 0: set once, or rarely written.
	offMagic    = 0  // uint32
	offKind     = 4  // uint32
	offMaxsize  = 8  // int64
	offLost     = 16 // int64: Joinable: tasks lost with processes that died
	offSlotHWM  = 24 // uint32: number of slots ever handed out
	offSlotHint = 28 // uint32: where the next slot search starts
	offWriting  = 32 // int64: ident of the large item being written (see core.go)
	// The words every Put and Get change, one cache line each, so that a
	// producer and a consumer on two CPUs do not also fight over their
	// neighbours.
	offCount      = 64  // int64: items put (or reserved by a Put) and not yet taken
	offReads      = 72  // int64: packets and chunks read: readers are alive (see waitRoom)
	offUnfinished = 128 // int64: Joinable: items put and not yet marked done
	offTaken      = 192 // int64: Joinable: items taken by any process and not yet marked done
	// Sleepers: read on every operation, written only by sleepers.
	offSpaceSeq    = 256 // uint32 futex word: bumped when a Get frees room
	offPutWaiters  = 260 // uint32: Puts sleeping on offSpaceSeq
	offJoinSeq     = 320 // uint32 futex word: bumped when unfinished reaches 0
	offJoinWaiters = 324 // uint32: Joins sleeping on offJoinSeq

	slotBase = 512
	slotSize = 64 // one cache line each: the owner updates its slot on every operation
	nSlots   = 1024

	// Slot words (int64 at these offsets inside the slot). Only the owner
	// changes the counters, except the recoverer of a dead owner.
	slotState   = 0  // generation<<1 | inUse
	slotPutPend = 8  // items counted by a Put whose bytes are not (all) in the pipe yet: in flight or buffered
	slotGetPend = 16 // Gets in flight that may have taken an item and not yet uncounted it
	slotTaken   = 24 // Joinable: items taken by this process and not yet marked done

	segSizeFull   = slotBase + nSlots*slotSize
	segSizeSimple = 64 // Simple keeps no counters: line 0 and the locks

	// OFD lock bytes of the memfd (byte ranges are independent of the data).
	lockW        = 0  // held by the process writing a large item, until the chunk pipe is drained
	lockR        = 1  // held by the process reading a large item
	lockSlotBase = 64 // + slot index: held by the slot's owner for as long as it lives
)

const slotInUse = 1

// slot is this process's slot in the shared segment.
type slot struct {
	state, putPend, getPend, taken *atomic.Int64
}

func (c *core) slotAt(i int) slot {
	b := slotBase + i*slotSize
	return slot{
		state:   c.seg.Int64(b + slotState),
		putPend: c.seg.Int64(b + slotPutPend),
		getPend: c.seg.Int64(b + slotGetPend),
		taken:   c.seg.Int64(b + slotTaken),
	}
}

func (c *core) count() *atomic.Int64      { return c.seg.Int64(offCount) }
func (c *core) reads() *atomic.Int64      { return c.seg.Int64(offReads) }
func (c *core) unfinished() *atomic.Int64 { return c.seg.Int64(offUnfinished) }
func (c *core) lost() *atomic.Int64       { return c.seg.Int64(offLost) }
func (c *core) takenAll() *atomic.Int64   { return c.seg.Int64(offTaken) }

// ownSlot returns this process's slot, claiming one on first use. A slot is
// claimed by taking its OFD lock byte: a free byte means its last owner
// closed the queue or died, and in the second case its counts are recovered
// first.
func (c *core) ownSlot() (slot, error) {
	if s := c.slot.Load(); s != nil {
		return *s, nil
	}
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if s := c.slot.Load(); s != nil {
		return *s, nil
	}
	if !c.counted() {
		// Simple shares no counters: its slot is private and only keeps
		// the code paths alike.
		s := slot{new(atomic.Int64), new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)}
		c.slot.Store(&s)
		return s, nil
	}
	hint := c.seg.Uint32(offSlotHint)
	start := int(hint.Add(1)) % nSlots
	for k := range nSlots {
		i := (start + k) % nSlots
		ok, err := ofdTryLock(c.lockFD, lockSlotBase+int64(i))
		if err != nil {
			return slot{}, fmt.Errorf("queue: lock slot: %w", err)
		}
		if !ok {
			continue
		}
		s := c.slotAt(i)
		st := s.state.Load()
		if st&slotInUse != 0 {
			c.recoverSlot(i, st) // the previous owner died
			st = s.state.Load()
		}
		s.putPend.Store(0)
		s.getPend.Store(0)
		s.taken.Store(0)
		s.state.Store((st>>1+1)<<1 | slotInUse)
		hwm := c.seg.Uint32(offSlotHWM)
		for {
			h := hwm.Load()
			if uint32(i) < h || hwm.CompareAndSwap(h, uint32(i)+1) {
				break
			}
		}
		c.slotIdx = i
		c.slot.Store(&s)
		return s, nil
	}
	return slot{}, fmt.Errorf("queue: more than %d processes use this queue", nSlots)
}

// releaseSlot gives the slot up at Close. Counts still pending (items that
// never reached the pipe, tasks taken and not done) are dropped the way a
// dead process's would be.
func (c *core) releaseSlot() {
	s := c.slot.Load()
	if s == nil {
		return
	}
	st := s.state.Load()
	c.applyLoss(s.putPend.Swap(0), s.getPend.Swap(0), s.taken.Swap(0))
	s.state.Store((st>>1 + 1) << 1)
	ofdUnlock(c.lockFD, lockSlotBase+int64(c.slotIdx))
}

// recoverSlot takes the counts of slot i, whose owner is dead, out of the
// shared counters. st is the state word seen when the owner was found dead;
// the compare-and-swap makes sure only one process recovers a slot, and
// that a slot re-claimed in the meantime is left alone.
func (c *core) recoverSlot(i int, st int64) {
	s := c.slotAt(i)
	put, get, taken := s.putPend.Load(), s.getPend.Load(), s.taken.Load()
	if !s.state.CompareAndSwap(st, (st>>1+1)<<1) {
		return
	}
	// The counters are left as they are: the next owner clears them when it
	// claims the slot, and clearing them here could race with that owner.
	c.applyLoss(put, get, taken)
}

// applyLoss removes counts that will never be settled: put items that never
// reached the pipe, Gets that died with (perhaps) an item, Joinable tasks
// taken and never done.
func (c *core) applyLoss(put, get, taken int64) {
	if put == 0 && get == 0 && taken == 0 {
		return
	}
	if c.counted() {
		c.count().Add(-(put + get))
		c.wakeSpace()
	}
	if c.kind == kindJoinable {
		if taken > 0 {
			addFloor(c.takenAll(), -taken)
		}
		if n := put + get + taken; n > 0 {
			c.lost().Add(n)
			if c.unfinished().Add(-n) <= 0 {
				c.wakeJoin()
			}
		}
	}
}

// recoverDead scans the slots in use for dead owners with pending counts.
// It runs while a Put waits for room and while Join waits, the two waits a
// dead process could otherwise make endless, and in Len, which would
// otherwise count the dead process's items forever.
func (c *core) recoverDead() {
	hwm := int(c.seg.Uint32(offSlotHWM).Load())
	for i := range min(hwm, nSlots) {
		if i == c.slotIdx {
			continue
		}
		s := c.slotAt(i)
		st := s.state.Load()
		if st&slotInUse == 0 || (s.putPend.Load() == 0 && s.getPend.Load() == 0 && s.taken.Load() == 0) {
			continue
		}
		if !ofdHeld(c.seg.FD(), lockSlotBase+int64(i)) {
			c.recoverSlot(i, st)
		}
	}
}

func (c *core) wakeSpace() {
	if c.seg.Uint32(offPutWaiters).Load() > 0 {
		w := c.seg.Uint32(offSpaceSeq)
		w.Add(1)
		wakeAll(w)
	}
}

func (c *core) wakeJoin() {
	if c.seg.Uint32(offJoinWaiters).Load() > 0 {
		w := c.seg.Uint32(offJoinSeq)
		w.Add(1)
		wakeAll(w)
	}
}

// recheck bounds every futex sleep: a wake-up lost to a dead waker costs at
// most this long, and each expiry scans for dead slots.
const recheck = 100 * time.Millisecond

// reserve counts one item about to be put. A bounded queue waits (block) for
// room, or returns ErrFull. The slot's putPend is raised before the shared
// count, so that a death in between leaves the count low, not high.
func (c *core) reserve(ctx context.Context, s slot, block bool) error {
	if !c.counted() {
		s.putPend.Add(1)
		return nil
	}
	cnt := c.count()
	if c.maxsize <= 0 {
		s.putPend.Add(1)
		if c.kind == kindJoinable {
			c.unfinished().Add(1)
		}
		cnt.Add(1)
		return nil
	}
	seq := c.seg.Uint32(offSpaceSeq)
	waiters := c.seg.Uint32(offPutWaiters)
	for {
		s.putPend.Add(1)
		if c.kind == kindJoinable {
			c.unfinished().Add(1)
		}
		for {
			n := cnt.Load()
			if n >= c.maxsize {
				break
			}
			if cnt.CompareAndSwap(n, n+1) {
				return nil
			}
		}
		if c.kind == kindJoinable && c.unfinished().Add(-1) <= 0 {
			c.wakeJoin()
		}
		s.putPend.Add(-1)
		if !block {
			return ErrFull
		}
		waiters.Add(1)
		v := seq.Load()
		var err error
		if cnt.Load() >= c.maxsize {
			err = c.futexWait(ctx, seq, v, recheck)
			if err == nil && seq.Load() == v {
				c.recoverDead()
			}
		}
		waiters.Add(^uint32(0))
		if err != nil {
			return err
		}
	}
}

// unreserve undoes reserve for an item that was not put after all.
func (c *core) unreserve(s slot) {
	if c.counted() {
		c.count().Add(-1)
		c.wakeSpace()
		if c.kind == kindJoinable && c.unfinished().Add(-1) <= 0 {
			c.wakeJoin()
		}
	}
	s.putPend.Add(-1)
}

// taken settles the counts of an item a Get has read from the pipe.
func (c *core) taken(s slot, counts bool) {
	if c.counted() {
		if c.kind == kindJoinable && counts {
			// Shared count first: a death in between leaves one TaskDone
			// too many allowed rather than one refused.
			c.takenAll().Add(1)
			s.taken.Add(1)
		}
		c.count().Add(-1)
		c.wakeSpace()
		if c.kind == kindJoinable && !counts {
			// An item that does not decode is no task the caller could
			// mark done: it is done already.
			if c.unfinished().Add(-1) <= 0 {
				c.wakeJoin()
			}
		}
	}
}

// taskDone marks one task done (Joinable): one of the items taken (by any
// process) and not yet marked done.
func (c *core) taskDone(s slot) error {
	if !addFloor(c.takenAll(), -1) {
		return ErrTaskDone
	}
	if t := s.taken.Load(); t > 0 {
		s.taken.Add(-1)
	}
	if c.unfinished().Add(-1) <= 0 {
		c.wakeJoin()
	}
	return nil
}

// addFloor adds d (< 0) to w unless that would take it below zero, and
// reports whether it did.
func addFloor(w *atomic.Int64, d int64) bool {
	for {
		n := w.Load()
		if n+d < 0 {
			if n > 0 && w.CompareAndSwap(n, 0) {
				return false
			}
			if n <= 0 {
				return false
			}
			continue
		}
		if w.CompareAndSwap(n, n+d) {
			return true
		}
	}
}

// join waits until every item put has been marked done.
func (c *core) join(ctx context.Context) error {
	u := c.unfinished()
	seq := c.seg.Uint32(offJoinSeq)
	waiters := c.seg.Uint32(offJoinWaiters)
	for {
		if u.Load() <= 0 {
			// Report each loss once per process: the first Join to return
			// after it noticed tasks lost says so.
			l := c.lost().Load()
			if n := l - c.lostSeen.Swap(l); n > 0 {
				return fmt.Errorf("queue: join: %d tasks were lost with processes that died: %w", n, ErrTaskLost)
			}
			return nil
		}
		waiters.Add(1)
		v := seq.Load()
		var err error
		if u.Load() > 0 {
			err = c.futexWait(ctx, seq, v, recheck)
			if err == nil && seq.Load() == v {
				c.recoverDead()
			}
		}
		waiters.Add(^uint32(0))
		if err != nil {
			return fmt.Errorf("queue: join: %w", err)
		}
	}
}

// length is Len: items put and not yet taken, never negative. A count left
// by a process that died with items it had not written is settled first,
// so that Len never counts items that no longer exist.
func (c *core) length() int {
	if !c.counted() {
		return 0
	}
	n := c.count().Load()
	if n > 0 {
		c.recoverDead()
		n = c.count().Load()
	}
	return int(max(n, 0))
}

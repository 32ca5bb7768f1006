//go:build linux

package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"github.com/mpgo/multiprocessing/internal/shm"
	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

type kind uint32

const (
	kindQueue kind = 1 + iota
	kindJoinable
	kindSimple
)

func (k kind) String() string {
	switch k {
	case kindQueue:
		return "Queue"
	case kindJoinable:
		return "Joinable"
	case kindSimple:
		return "Simple"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// core is the untyped queue behind Queue, Joinable and Simple: two
// packet-mode pipes, a shared segment, and this process's view of them.
//
// The main pipe carries one packet per item: the item itself when its
// encoding fits in a packet, else a marker saying "the next large item is in
// the chunk pipe". The chunk pipe carries large items cut into chunk
// packets, written by one process at a time (the OFD lock byte lockW) and
// read by one process at a time (lockR).
type core struct {
	kind    kind
	maxsize int64
	opts    options

	seg    *shm.Segment
	mr, mw int // main pipe
	br, bw int // chunk pipe
	lockFD int // this process's own description of the segment's memfd, for OFD locks
	wakeFD int // eventfd written by Close: wakes this process's sleepers
	wakers wakerPool

	// gate: operations hold it shared, Close exclusively, so that the
	// descriptors and the mapping outlive every operation.
	gate      sync.RWMutex
	closed    atomic.Bool
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	slotMu   sync.Mutex
	slot     atomic.Pointer[slot]
	slotIdx  int
	lostSeen atomic.Int64

	// Sending side (send.go), guarded by smu.
	smu          sync.Mutex
	outbox       []outEntry
	arena        []byte       // where small buffered packets are packed
	spare        []outEntry   // the flusher's batch slice, kept between flushers
	pendingOut   atomic.Int64 // items buffered and not yet written (outbox and the flusher's batch)
	pendingBytes atomic.Int64 // their encoded bytes
	flushing     bool         // a flusher goroutine owns the writes
	written      atomic.Uint64
	abandon      atomic.Bool
	registry     bool       // listed in pending (exit.go)
	dropMu       sync.Mutex // serializes flushOrDrop
	// Put waits for room in this process's backlog (see MaxUnwritten):
	// room is closed by the flusher when the backlog is down to half;
	// stallMark is the shared read count seen when a waiting Put found
	// that no process reads (the backlog then grows, until a read).
	room      atomic.Pointer[chan struct{}]
	stallMark atomic.Int64
	// Direct mode (send.go): Puts write the backlog while no flusher
	// runs; kickTimer starts a flusher when no Put came since kickSeq.
	putSeq, kickSeq uint64
	fullAt          int64 // the shared read count when a direct write last found the pipe full
	kickArmed       bool
	kickTimer       *time.Timer

	// Owned by whoever writes (the flusher, or Put while !flushing).
	writer   uint64 // random: identifies this process's large items
	seq      uint64
	wHeld    bool
	draining bool // the last large item is written; W is held until the chunk pipe is empty
	drain    drainState
	chunkHdr [qframe.ChunkHeaderLen]byte
	// Written by the flusher, not yet taken out of pendingOut,
	// pendingBytes and written (see settle).
	unsettled, unsettledBytes int64

	// Receiving side (recv.go).
	rsem chan struct{}     // in-process half of the reader lock
	asm  *qframe.Assembler // readLarge's, under rsem

	// Storage kept for the next large item (see keepMax).
	encKeep  [2]atomic.Pointer[bytes.Buffer]
	itemKeep atomic.Pointer[[]byte]
}

func (c *core) counted() bool { return c.kind != kindSimple }

// ident is the word a large item is known by while it is written (see
// offWriting).
func ident(writer, seq uint64) uint64 { return writer + seq }

// The word at offWriting holds the ident of the large item the holder of
// lockW is writing (0 when none). A reader holding a marker waits for
// chunks only while the item being written is the one its marker announced.

func newCore(k kind, maxsize int, opts []Option) (*core, error) {
	if maxsize < 0 {
		maxsize = 0
	}
	size := segSizeFull
	if k == kindSimple {
		size = segSizeSimple
	}
	seg, err := shm.New("queue", size)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	seg.Uint32(offMagic).Store(segMagic)
	seg.Uint32(offKind).Store(uint32(k))
	seg.Int64(offMaxsize).Store(int64(maxsize))
	c := &core{kind: k, maxsize: int64(maxsize), seg: seg, mr: -1, mw: -1, br: -1, bw: -1, lockFD: -1, wakeFD: -1}
	for _, o := range opts {
		o.apply(&c.opts)
	}
	if c.mr, c.mw, err = newPacketPipe(mainPipeSize); err != nil {
		c.release()
		return nil, err
	}
	if c.br, c.bw, err = newPacketPipe(chunkPipeSize); err != nil {
		c.release()
		return nil, err
	}
	if err := c.initLocal(); err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// initLocal sets up what each process has of its own: its lock description,
// its wake-up eventfd, its writer identity.
func (c *core) initLocal() error {
	var err error
	if c.lockFD, err = openLockFD(c.seg.FD()); err != nil {
		return err
	}
	if c.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("queue: eventfd: %w", err)
	}
	c.closing = make(chan struct{})
	c.stallMark.Store(-1)
	c.rsem = make(chan struct{}, 1)
	c.slotIdx = -1
	c.writer = rand.Uint64() | 1
	if c.counted() {
		c.lostSeen.Store(c.lost().Load())
	}
	if c.opts.flushTimeout == 0 {
		c.opts.flushTimeout = defaultFlushTimeout
	}
	return nil
}

// release closes whatever is open; the mapping last.
func (c *core) release() {
	for _, fd := range []*int{&c.mr, &c.mw, &c.br, &c.bw, &c.lockFD, &c.wakeFD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	c.wakers.close()
	if c.seg != nil {
		c.seg.Close()
	}
}

// enter starts an operation; false once the queue is closed in this process.
func (c *core) enter() bool {
	c.gate.RLock()
	if c.closed.Load() {
		c.gate.RUnlock()
		return false
	}
	return true
}

func (c *core) leave() { c.gate.RUnlock() }

// close implements Close: stop, flush, wait for operations, release.
func (c *core) close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.closing)
		signalFD(c.wakeFD)
		if c.counted() {
			// Sleepers on the shared words in this process re-check and
			// see the queue closed; those of other processes sleep again.
			wakeAll(c.seg.Uint32(offSpaceSeq))
			wakeAll(c.seg.Uint32(offJoinSeq))
		}
		lost := c.flushOrDrop()
		c.smu.Lock()
		if c.kickTimer != nil {
			c.kickTimer.Stop()
		}
		c.smu.Unlock()
		c.gate.Lock()
		if c.counted() {
			c.releaseSlot()
		}
		c.release()
		c.gate.Unlock()
		unregisterPending(c)
		if lost > 0 {
			c.closeErr = fmt.Errorf("queue: close: %d items put by this process were never written: no process read the queue for %v: %w",
				lost, c.opts.flushTimeout, ErrNotFlushed)
		}
	})
	return c.closeErr
}

// flush waits until this process's buffered items are in the pipe and its
// large item (if any) has been taken. It returns ctx's error when ctx ends,
// and errStalled when stall > 0 and nothing moved for that long.
func (c *core) flush(ctx context.Context, stall time.Duration) error {
	last := c.written.Load()
	lastBytes := -1
	since := time.Now()
	tick := 50 * time.Microsecond
	for {
		c.smu.Lock()
		if !c.flushing && len(c.outbox) > 0 {
			c.startFlusherLocked() // a direct-mode backlog: do not wait for the kick
		}
		idle := !c.flushing && len(c.outbox) == 0
		c.smu.Unlock()
		if idle {
			return nil
		}
		if w := c.written.Load(); w != last {
			last, since = w, time.Now()
		} else if b := pipeBytes(c.br); b != lastBytes {
			lastBytes, since = b, time.Now() // a reader is taking a large item
		} else if stall > 0 && time.Since(since) > stall {
			return errStalled
		}
		t := time.NewTimer(tick)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		tick = min(tick*2, 10*time.Millisecond)
	}
}

var errStalled = errors.New("queue: no progress")

// Handle passing. Every queue travels as its kind, maxsize, four pipe
// descriptors and the segment; the receiving process builds its own view
// (lock description, slot, writer identity). Items buffered by the sender
// stay with the sender.
const stateVersion = 1

func (c *core) encodeState(fds *wire.Files) ([]byte, error) {
	if !c.enter() {
		return nil, fmt.Errorf("queue: cannot pass a closed %s: %w", c.kind, ErrClosed)
	}
	defer c.leave()
	b := []byte{stateVersion, byte(c.kind)}
	b = binary.BigEndian.AppendUint64(b, uint64(c.maxsize))
	b = binary.BigEndian.AppendUint32(b, uint32(c.opts.flushTimeout/time.Millisecond))
	for _, fd := range []int{c.mr, c.mw, c.br, c.bw} {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("queue: dup: %w", err)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(fds.AddOwned(d)))
	}
	st, err := c.seg.EncodeState(fds)
	if err != nil {
		return nil, err
	}
	return append(b, st...), nil
}

func decodeCore(want kind, state []byte, fds *wire.Files) (*core, error) {
	const fixed = 22 // version, kind, maxsize, flush timeout, 4 descriptor indices
	if len(state) < fixed || state[0] != stateVersion {
		return nil, fmt.Errorf("queue: bad %s state (%d bytes)", want, len(state))
	}
	got := kind(state[1])
	if got != want && !(got == kindJoinable && want == kindQueue) {
		// (A Joinable may travel as its embedded *Queue: it stays a
		// Joinable underneath, and its Puts count tasks.)
		return nil, fmt.Errorf("queue: received a %s where a %s was expected", got, want)
	}
	want = got
	c := &core{kind: want, maxsize: int64(binary.BigEndian.Uint64(state[2:])), mr: -1, mw: -1, br: -1, bw: -1, lockFD: -1, wakeFD: -1}
	c.opts.flushTimeout = time.Duration(binary.BigEndian.Uint32(state[10:])) * time.Millisecond
	for i, p := range []*int{&c.mr, &c.mw, &c.br, &c.bw} {
		fd, err := fds.Take(int(binary.BigEndian.Uint16(state[14+2*i:])))
		if err != nil {
			c.release()
			return nil, err
		}
		*p = fd
	}
	seg, _, err := shm.DecodeState(state[fixed:], fds)
	if err != nil {
		c.release()
		return nil, err
	}
	c.seg = seg
	if seg.Uint32(offMagic).Load() != segMagic || kind(seg.Uint32(offKind).Load()) != want {
		c.release()
		return nil, fmt.Errorf("queue: received shared memory is not a %s", want)
	}
	for i, fd := range []int{c.mr, c.mw, c.br, c.bw} {
		if err := checkPipeFlags(fd, i%2 == 1); err != nil {
			c.release()
			return nil, fmt.Errorf("queue: received pipe: %w", err)
		}
	}
	if err := c.initLocal(); err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// MaxItemSize is the largest encoded item a queue carries: 1 GiB, the
// default message limit of the pipe package.
const MaxItemSize = 1 << 30

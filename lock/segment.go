//go:build linux

package lock

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/shm"
	"golang.org/x/sys/unix"
)

// Every object lives in one memfd segment: a header, then the words of its
// kind. The memfd has no name in any file system, so the segment disappears
// when the last process holding it closes it or dies.
//
// Each process that uses a segment attaches to it once (a "core"): it opens
// the memfd itself (never an inherited descriptor, see attach), takes a
// number, its slot, from the segment's counter, and holds an open file
// description (OFD) write lock on byte <slot> of the memfd for as long as it
// stays attached. The kernel drops that lock when the process dies, SIGKILL
// included, or closes the descriptor, so "is slot S alive" is one
// fcntl(F_OFD_GETLK). Slots are never reused within a segment, so unlike a
// pid a slot cannot come back to life in another process.
const (
	segMagic   = 0x6c67706d // "mpgl"
	segVersion = 1

	offMagic    = 0
	offVersion  = 4
	offKind     = 8
	offNextSlot = 12

	// slotBits words store a slot in their low bits; bit 31 is the
	// waiters flag of a mutex word.
	slotMask   = 1<<29 - 1
	waitersBit = 1 << 31

	pageSize = 4096

	sizeSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW
)

type kind uint8

const (
	kindLock kind = iota + 1
	kindRLock
	kindSemaphore
	kindBoundedSemaphore
	kindEvent
	kindCondition
	kindBarrier
)

func (k kind) String() string {
	switch k {
	case kindLock:
		return "Lock"
	case kindRLock:
		return "RLock"
	case kindSemaphore:
		return "Semaphore"
	case kindBoundedSemaphore:
		return "BoundedSemaphore"
	case kindEvent:
		return "Event"
	case kindCondition:
		return "Condition"
	case kindBarrier:
		return "Barrier"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// segSize is the segment size of each kind. Semaphore and Condition keep a
// table of per-process (per-waiter) entries after the header.
func segSize(k kind) int {
	switch k {
	case kindSemaphore, kindBoundedSemaphore, kindCondition:
		return 4 * pageSize
	}
	return pageSize
}

type fileKey struct{ dev, ino uint64 }

// core is one process's attachment to a segment. All handles of the same
// object in a process share one core (see the registry), so "this process
// holds the lock" has one answer whichever handle asks.
type core struct {
	mem  []byte
	kind kind
	slot uint32
	key  fileKey

	// fdmu guards fd: the slow paths use it for liveness checks and
	// encoding while Close may close it.
	fdmu sync.RWMutex
	fd   int

	refs   int // handles in this process; registry.mu
	closed atomic.Bool

	// gate lets one goroutine per process at a time sleep on the object's
	// main mutex word; the others park in the Go scheduler instead of
	// holding an OS thread each in futex(2).
	gate chan struct{}

	// raceAnchor is heap memory on which the race detector is told about
	// the happens-before edges our shared-memory atomics create (it does
	// not see atomics outside the Go heap).
	//lint:ignore U1000 read by race.go, built only under -race
	raceAnchor uint64

	// RLock: the process-wide recursion count; rmu guards it.
	rmu    sync.Mutex
	rcount int

	// Semaphore: this process's entry in the holder table (-1: none yet).
	// Written under the semaphore's shared mutex, which the race detector
	// cannot see, hence atomic.
	semEntry atomic.Int32
}

func (c *core) u32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&c.mem[off]))
}

func (c *core) u64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

var registry = struct {
	sync.Mutex
	m map[fileKey]*core
}{m: map[fileKey]*core{}}

// create makes a new segment of kind k, attaches this process and lets init
// fill in the kind's words before anyone else can see it.
func create(k kind, init func(c *core)) (*core, error) {
	fd, err := unix.MemfdCreate("mpgo-lock-"+k.String(), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("lock: memfd_create: %w", err)
	}
	size := segSize(k)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock: ftruncate: %w", err)
	}
	// A segment that shrank under a mapping would fault (SIGBUS) on
	// access: seal its size, and check the seals on every received one.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, sizeSeals|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock: seal segment: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock: mmap: %w", err)
	}
	c := &core{mem: mem, kind: k, fd: fd}
	c.u32(offVersion).Store(segVersion)
	c.u32(offKind).Store(uint32(k))
	c.u32(offNextSlot).Store(1)
	if init != nil {
		init(c)
	}
	c.u32(offMagic).Store(segMagic)
	if err := c.attach(); err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// attach takes a slot and its liveness lock, and registers the core.
func (c *core) attach() error {
	var st unix.Stat_t
	if err := unix.Fstat(c.fd, &st); err != nil {
		return fmt.Errorf("lock: fstat: %w", err)
	}
	c.key = fileKey{uint64(st.Dev), st.Ino}
	s := c.u32(offNextSlot).Add(1) - 1
	if s == 0 || s > slotMask {
		return fmt.Errorf("lock: %s has had too many attachments (%d)", c.kind, s)
	}
	c.slot = s
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(s), Len: 1}
	if err := unix.FcntlFlock(uintptr(c.fd), unix.F_OFD_SETLK, &lk); err != nil {
		return fmt.Errorf("lock: OFD lock (Linux 3.15+ needed): %w", err)
	}
	c.gate = make(chan struct{}, 1)
	c.semEntry.Store(-1)
	// The mapping outlives Close until no goroutine can still be using it:
	// an operation racing with Close then reads stale memory instead of
	// faulting. Unmapping costs nothing on the fast paths this way.
	mem := c.mem
	runtime.AddCleanup(c, func(m []byte) { unix.Munmap(m) }, mem)
	registry.Lock()
	registry.m[c.key] = c
	c.refs = 1
	registry.Unlock()
	return nil
}

// attachReceived attaches to a segment whose descriptor arrived from another
// process (or from this one). It always closes fd.
//
// It must not keep fd: a received descriptor shares its open file
// description with the sender, and an OFD lock lives until the last
// descriptor of its description is closed. Keeping it would keep the
// sender's liveness lock alive after the sender died. So the memfd is opened
// again through /proc/self/fd, which makes a new description.
func attachReceived(fd int, want kind) (*core, error) {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("lock: fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(segSize(want)) {
		return nil, fmt.Errorf("lock: received descriptor is not a %s segment", want)
	}
	if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err != nil || seals&sizeSeals != sizeSeals {
		return nil, fmt.Errorf("lock: received descriptor is not a sealed %s segment", want)
	}
	key := fileKey{uint64(st.Dev), st.Ino}
	registry.Lock()
	if c := registry.m[key]; c != nil {
		if c.kind != want {
			registry.Unlock()
			return nil, fmt.Errorf("lock: received a %s where a %s was expected", c.kind, want)
		}
		c.refs++
		registry.Unlock()
		return c, nil
	}
	registry.Unlock()

	own, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock: reopen received segment (is /proc mounted?): %w", err)
	}
	size := segSize(want)
	mem, err := unix.Mmap(own, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(own)
		return nil, fmt.Errorf("lock: mmap: %w", err)
	}
	c := &core{mem: mem, kind: want, fd: own}
	if c.u32(offMagic).Load() != segMagic || c.u32(offVersion).Load() != segVersion || kind(c.u32(offKind).Load()) != want {
		unix.Munmap(mem)
		unix.Close(own)
		return nil, fmt.Errorf("lock: received descriptor is not a %s segment", want)
	}
	// Two handles of one object may arrive in the same argument: the
	// second one finds the first's core.
	registry.Lock()
	if c2 := registry.m[key]; c2 != nil && c2.kind == want {
		c2.refs++
		registry.Unlock()
		unix.Munmap(mem)
		unix.Close(own)
		return c2, nil
	}
	registry.Unlock()
	if err := c.attach(); err != nil {
		unix.Munmap(mem)
		unix.Close(own)
		return nil, err
	}
	return c, nil
}

// ref adds a handle to c (for a Condition that shares the caller's Lock).
func (c *core) ref() {
	registry.Lock()
	c.refs++
	registry.Unlock()
}

// unref drops a handle; the last one detaches the process: its liveness
// lock goes away with the descriptor, exactly as if it had died, and
// whatever it still held is recovered by the others.
func (c *core) unref() error {
	registry.Lock()
	c.refs--
	last := c.refs == 0
	if last && registry.m[c.key] == c {
		delete(registry.m, c.key)
	}
	registry.Unlock()
	if !last {
		return nil
	}
	c.closed.Store(true)
	c.fdmu.Lock()
	err := unix.Close(c.fd)
	c.fd = -1
	c.fdmu.Unlock()
	return err
}

// alive reports whether slot s is attached to the segment: some process
// holds the liveness lock on its byte. When in doubt (an error) it says yes,
// so a failure can delay recovery but never steal a live holder's lock.
func (c *core) alive(s uint32) bool {
	if s == c.slot {
		return true
	}
	c.fdmu.RLock()
	defer c.fdmu.RUnlock()
	if c.fd < 0 {
		return true
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(s), Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(c.fd), unix.F_OFD_GETLK, &lk)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return true
		}
		return lk.Type != unix.F_UNLCK
	}
}

// dupFD returns a close-on-exec duplicate of this process's descriptor for
// sending.
func (c *core) dupFD() (int, error) {
	c.fdmu.RLock()
	defer c.fdmu.RUnlock()
	if c.fd < 0 {
		return -1, ErrClosed
	}
	d, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("lock: dup: %w", err)
	}
	return d, nil
}

// wakeAll wakes every process sleeping on w. Spurious wake-ups are harmless:
// every sleeper re-checks its condition.
func wakeAll(w *atomic.Uint32) { shm.Wake(w, 1<<30) }

//go:build linux

// Package shm provides shared memory segments that travel to child
// processes, and futex wait/wake on words inside them.
//
// A Segment is a memfd mapped MAP_SHARED: it has no name in any file
// system, so nothing is left behind when the last process holding it
// closes it or dies. It is passed to a child as a descriptor in the
// process argument (see EncodeState / DecodeState) and mapped again there.
package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned when a closed Segment is used or passed.
var ErrClosed = errors.New("shm: segment closed")

// Segment is a shared memory mapping. Its memory stays mapped until Close;
// Close must not race with users of the memory (the owning object
// serialises that).
type Segment struct {
	mu    sync.Mutex
	fd    int
	mem   []byte
	size  int
	guard bool // see FaultAfterClose
}

// New creates a zeroed segment of size bytes (rounded up to a page).
func New(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("shm: bad size %d", size)
	}
	fd, err := unix.MemfdCreate("mpgo-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: ftruncate: %w", err)
	}
	return mapFD(fd, size)
}

// NewSealed is New with the size sealed (F_SEAL_GROW, F_SEAL_SHRINK): no
// process can then truncate the memfd under another's mapping, which would
// make every access past the new end fault (SIGBUS). A receiver checks it
// with SizeSealed.
func NewSealed(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("shm: bad size %d", size)
	}
	fd, err := unix.MemfdCreate("mpgo-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: ftruncate: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, sizeSeals|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: seal: %w", err)
	}
	return mapFD(fd, size)
}

const sizeSeals = unix.F_SEAL_GROW | unix.F_SEAL_SHRINK

// SizeSealed reports whether fd is a memfd whose size can no longer change.
func SizeSealed(fd int) bool {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	return err == nil && seals&sizeSeals == sizeSeals
}

// Map maps size bytes of fd, shared, for reading and writing. The Segment
// owns fd from then on; on failure fd is closed.
func Map(fd, size int) (*Segment, error) {
	if size <= 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: bad size %d", size)
	}
	return mapFD(fd, size)
}

// mapFD maps with MmapPtr rather than unix.Mmap: Close may replace the
// mapping in place (FaultAfterClose), which unix.Munmap's bookkeeping of
// the mappings it made would not know about.
func mapFD(fd, size int) (*Segment, error) {
	p, err := unix.MmapPtr(fd, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	return &Segment{fd: fd, mem: unsafe.Slice((*byte)(p), size), size: size}, nil
}

// FaultAfterClose makes Close leave an inaccessible (PROT_NONE) mapping
// over the segment's addresses instead of unmapping them, until the Segment
// itself is garbage collected. The shared pages are released at Close all
// the same; a slice of them that outlived Close then faults on use instead
// of reading or writing whatever the addresses were given to next. For
// segments whose memory users hold as slices. At most maxGuards closed
// segments keep a guard at a time.
func (s *Segment) FaultAfterClose() {
	s.mu.Lock()
	s.guard = true
	s.mu.Unlock()
}

// Bytes returns the mapped memory.
func (s *Segment) Bytes() []byte { return s.mem }

// Uint32 returns the 32-bit word at byte offset off (4-byte aligned).
func (s *Segment) Uint32(off int) *atomic.Uint32 {
	if off%4 != 0 || off+4 > len(s.mem) {
		panic(fmt.Sprintf("shm: bad uint32 offset %d", off))
	}
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[off]))
}

// Int64 returns the 64-bit word at byte offset off (8-byte aligned).
func (s *Segment) Int64(off int) *atomic.Int64 {
	if off%8 != 0 || off+8 > len(s.mem) {
		panic(fmt.Sprintf("shm: bad int64 offset %d", off))
	}
	return (*atomic.Int64)(unsafe.Pointer(&s.mem[off]))
}

// FD returns the memfd (valid until Close).
func (s *Segment) FD() int { return s.fd }

// Close unmaps the memory and closes the descriptor. Idempotent.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return nil
	}
	err := s.unmap()
	s.mem = nil
	if cerr := unix.Close(s.fd); err == nil {
		err = cerr
	}
	s.fd = -1
	return err
}

// unmap releases the mapping, or with guard replaces it in one step (so no
// other mapping can take the addresses in between) by a reservation that
// faults on access and costs no memory.
func (s *Segment) unmap() error {
	addr, n := unsafe.Pointer(unsafe.SliceData(s.mem)), uintptr(len(s.mem))
	if s.guard && guards.Add(1) <= maxGuards {
		_, err := unix.MmapPtr(-1, 0, addr, n, unix.PROT_NONE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
		if err == nil {
			runtime.AddCleanup(s, func(r region) {
				unix.MunmapPtr(r.addr, r.n)
				guards.Add(-1)
			}, region{addr, n})
			return nil
		}
	}
	if s.guard {
		guards.Add(-1)
	}
	return unix.MunmapPtr(addr, n)
}

// guards counts the reservations Close left that are not yet released. The
// kernel caps the mappings of a process (vm.max_map_count, 65530 by
// default); past maxGuards Close unmaps at once, unguarded. (Forcing a
// collection instead would stall a program with a large heap.)
var guards atomic.Int64

const maxGuards = 8192

type region struct {
	addr unsafe.Pointer
	n    uintptr
}

// EncodeState adds a duplicate of the segment's descriptor to fds and
// returns the state DecodeState needs (8 bytes: index and size).
func (s *Segment) EncodeState(fds *wire.Files) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return nil, ErrClosed
	}
	d, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: dup: %w", err)
	}
	i := fds.AddOwned(d)
	var b [8]byte
	binary.BigEndian.PutUint32(b[:], uint32(i))
	binary.BigEndian.PutUint32(b[4:], uint32(s.size))
	return b[:], nil
}

// DecodeState maps the segment described by state (from EncodeState) and
// returns the rest of state after the 8 bytes it used.
func DecodeState(state []byte, fds *wire.Files) (*Segment, []byte, error) {
	if len(state) < 8 {
		return nil, nil, fmt.Errorf("shm: state too short (%d bytes)", len(state))
	}
	fd, err := fds.Take(int(binary.BigEndian.Uint32(state)))
	if err != nil {
		return nil, nil, err
	}
	size := int(binary.BigEndian.Uint32(state[4:]))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size < int64(size) || size <= 0 {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("shm: received segment is not %d bytes", size)
	}
	seg, err := mapFD(fd, size)
	if err != nil {
		return nil, nil, err
	}
	return seg, state[8:], nil
}

const (
	futexWait = 0
	futexWake = 1
)

// Wait sleeps while *addr == val, at most d (d < 0: no limit), or until a
// Wake on the same word. Spurious wake-ups happen: callers re-check their
// condition in a loop. It never uses FUTEX_PRIVATE_FLAG, which would make
// the futex invisible to other processes.
func Wait(addr *atomic.Uint32, val uint32, d time.Duration) {
	var ts *unix.Timespec
	if d >= 0 {
		t := unix.NsecToTimespec(d.Nanoseconds())
		ts = &t
	}
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(ts)), 0, 0)
}

// Wake wakes up to n waiters on addr and returns how many woke.
func Wake(addr *atomic.Uint32, n int) int {
	r, _, _ := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(n), 0, 0, 0)
	return int(r)
}

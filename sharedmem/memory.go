//go:build linux

package sharedmem

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/shm"
	"golang.org/x/sys/unix"
)

// shmDir is where POSIX shm_open(3) keeps named blocks on Linux (glibc and
// musl both use this fixed path), so Python's SharedMemory finds them here.
const shmDir = "/dev/shm/"

// Memory is a block of memory mapped by several processes at once (Python's
// multiprocessing.shared_memory.SharedMemory). New makes an anonymous one,
// Create and Open named ones.
//
// A Memory is safe for concurrent use by goroutines (the bytes themselves
// are plain memory: see Bytes). It can be passed to a child process inside
// the process argument, to a pool Initializer, or over a unix-socket
// pipe.Conn: only its descriptor crosses, and the receiver maps the same
// pages.
type Memory struct {
	mu   sync.Mutex // guards seg against Close while encoding
	seg  *shm.Segment
	data atomic.Pointer[byte] // start of the mapping; nil once closed
	size int
	name string // "" for an anonymous block
}

// New returns an anonymous block of size bytes, zeroed. It has no name in
// any file system: it lives while some process has it mapped or holds a
// handle, and vanishes with the last one, so it never leaks.
func New(size int) (*Memory, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	seg, err := shm.NewSealed("sharedmem", size)
	if err != nil {
		return nil, sizeError(size, err)
	}
	return newMemory(seg, size, ""), nil
}

func newMemory(seg *shm.Segment, size int, name string) *Memory {
	seg.FaultAfterClose()
	m := &Memory{seg: seg, size: size, name: name}
	m.data.Store(unsafe.SliceData(seg.Bytes()))
	return m
}

// Create makes a named block of size bytes, zeroed, as
// SharedMemory(name, create=True, size=size) does: the file /dev/shm/NAME,
// mode 0600. name is given without the leading "/" (one is accepted and
// dropped). It fails with ErrExist if the name is taken.
//
// The block lives until Unlink, even after every process has closed it:
// see the package documentation for cleaning up.
func Create(name string, size int) (*Memory, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	if err := checkSize(size); err != nil {
		return nil, err
	}
	path := shmDir + name
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, openError("create", name, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return nil, sizeError(size, err)
	}
	seg, err := shm.Map(fd, size)
	if err != nil {
		unix.Unlink(path)
		return nil, sizeError(size, err)
	}
	return newMemory(seg, size, name), nil
}

// Open attaches to the named block, made by Create in any process or by
// Python's SharedMemory(name, create=True). Its size is the file's, as in
// Python on Linux. A missing name is ErrNotExist.
func Open(name string) (*Memory, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(shmDir+name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError("open", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sharedmem: open %q: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("sharedmem: open %q: not a regular file", name)
	}
	if st.Size <= 0 || st.Size > math.MaxInt {
		// Also what a reader sees between another process's create and
		// its ftruncate.
		unix.Close(fd)
		return nil, fmt.Errorf("%w: block %q has %d bytes", ErrSize, name, st.Size)
	}
	size := int(st.Size)
	seg, err := shm.Map(fd, size)
	if err != nil {
		return nil, sizeError(size, err)
	}
	return newMemory(seg, size, name), nil
}

// Bytes returns the mapped memory itself, no copy (Python's .buf). What
// several processes write to it is plain memory: use a lock (or atomic
// operations) to order it.
//
// The slice is valid until Close. After Close, Bytes returns nil, and a
// slice taken before must not be used: while the Memory is still
// reachable such a use faults (the program crashes with "unexpected fault
// address") instead of touching memory that now belongs to something else.
func (m *Memory) Bytes() []byte {
	p := m.data.Load()
	if p == nil {
		return nil
	}
	return unsafe.Slice(p, m.size)
}

// Size returns the size in bytes, as given to New or Create (Open: the
// file's size).
func (m *Memory) Size() int { return m.size }

// Name returns the block's name without a leading "/" (as Python's .name),
// or "" for an anonymous block.
func (m *Memory) Name() string { return m.name }

// Close unmaps the block in this process and releases its descriptor. Other
// processes keep their mappings; a named block keeps its name (see Unlink).
// Close is idempotent. It must not run while another goroutine still uses
// the bytes.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seg == nil {
		return nil
	}
	m.data.Store(nil)
	err := m.seg.Close()
	m.seg = nil
	return err
}

// Unlink removes the block's name (Python's .unlink), as shm_unlink(3):
// processes that have it mapped keep using it, and the memory is freed when
// the last of them closes it. Unlink works whether or not this Memory is
// closed; it is ErrNotExist when the name is already gone. An anonymous
// block has no name: Unlink does nothing and returns nil.
func (m *Memory) Unlink() error {
	if m.name == "" {
		return nil
	}
	if err := unix.Unlink(shmDir + m.name); err != nil {
		return openError("unlink", m.name, err)
	}
	return nil
}

// checkName validates a block name as shm_open(3) does and returns it
// without its leading slashes.
func checkName(name string) (string, error) {
	n := strings.TrimLeft(name, "/")
	switch {
	case n == "" || n == "." || n == "..":
		return "", fmt.Errorf("sharedmem: bad block name %q", name)
	case strings.ContainsAny(n, "/\x00"):
		return "", fmt.Errorf("sharedmem: bad block name %q: it may not contain '/' or NUL", name)
	case len(n) > 255:
		return "", fmt.Errorf("sharedmem: block name of %d bytes is longer than the system's 255", len(n))
	}
	return n, nil
}

func checkSize(size int) error {
	if size <= 0 {
		return fmt.Errorf("%w: %d bytes (must be positive)", ErrSize, size)
	}
	return nil
}

// sizeError reports a failure to make or map a block of size bytes; the
// kernel's answers to a size it cannot give are ErrSize.
func sizeError(size int, err error) error {
	if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EFBIG) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: %d bytes is more than this system allows (%w)", ErrSize, size, err)
	}
	return fmt.Errorf("sharedmem: %d bytes: %w", size, err)
}

func openError(op, name string, err error) error {
	switch {
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w: %q (%w)", ErrExist, name, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %q (%w)", ErrNotExist, name, err)
	}
	return fmt.Errorf("sharedmem: %s %q: %w", op, name, err)
}

// Slice returns a typed view of the whole block, no copy: the Go
// counterpart of numpy.ndarray(n, dtype, buffer=shm.buf). It fails with
// ErrSize when the block's size is not a multiple of T's size, and with
// ErrClosed on a closed Memory. The view is valid until Close, as Bytes.
func Slice[T Number](m *Memory) ([]T, error) {
	p := m.data.Load()
	if p == nil {
		return nil, ErrClosed
	}
	var zero T
	es := int(unsafe.Sizeof(zero))
	if m.size%es != 0 {
		return nil, fmt.Errorf("%w: %d bytes do not divide into %T elements of %d bytes", ErrSize, m.size, zero, es)
	}
	// Mappings start on a page boundary, so this holds; the check keeps a
	// misaligned view (a fault on some CPUs) from ever being made.
	if uintptr(unsafe.Pointer(p))%unsafe.Alignof(zero) != 0 {
		return nil, fmt.Errorf("sharedmem: block is not aligned for %T", zero)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(p)), m.size/es), nil
}

// Number is the element type of an Array, a Value and a Slice view: fixed
// size numbers, so that every process reads the same bytes the same way.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int | ~uint8 | ~uint16 |
		~uint32 | ~uint64 | ~uint | ~uintptr | ~float32 | ~float64
}

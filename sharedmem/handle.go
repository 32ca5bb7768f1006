//go:build linux

package sharedmem

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/shm"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// A Memory travels as a wire handle: its descriptor (a duplicate) in the
// descriptor table and this state beside it:
//
//	version, flags (bit 0: named), descriptor index (uint16), size (uint64),
//	then the name of a named block
//
// The receiver trusts none of it alone: the descriptor must be a regular
// file at least that large, and an anonymous block's size must be sealed,
// so that no process can shrink it under the mappings.
//
// Array and Value travel as a carrier: version, element code, then a Memory
// and a lock.Lock encoded by wire into the same descriptor table.
const (
	stateVersion = 1
	flagNamed    = 1
	memFixed     = 12
)

func init() {
	wire.RegisterHandle(wire.ExtMemory, (*Memory).encodeState, (*Memory).decodeState)
	wire.RegisterHandle(wire.ExtArray, (*carrier).encode, func(c *carrier, state []byte, fds *wire.Files) error {
		return c.decode("Array", state, fds)
	})
	wire.RegisterHandle(wire.ExtValue, (*valueCarrier).encode, func(c *valueCarrier, state []byte, fds *wire.Files) error {
		return (*carrier)(c).decode("Value", state, fds)
	})
}

func (m *Memory) encodeState(fds *wire.Files) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seg == nil {
		return nil, fmt.Errorf("sharedmem: cannot pass a closed Memory: %w", ErrClosed)
	}
	d, err := unix.FcntlInt(uintptr(m.seg.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sharedmem: dup: %w", err)
	}
	i := fds.AddOwned(d)
	if i > math.MaxUint16 {
		return nil, fmt.Errorf("sharedmem: too many descriptors in one value")
	}
	st := make([]byte, memFixed, memFixed+len(m.name))
	st[0] = stateVersion
	if m.name != "" {
		st[1] = flagNamed
	}
	binary.BigEndian.PutUint16(st[2:], uint16(i))
	binary.BigEndian.PutUint64(st[4:], uint64(m.size))
	return append(st, m.name...), nil
}

func (m *Memory) decodeState(state []byte, fds *wire.Files) error {
	if len(state) < memFixed {
		return fmt.Errorf("sharedmem: Memory state too short (%d bytes)", len(state))
	}
	if state[0] != stateVersion {
		return fmt.Errorf("sharedmem: Memory state version %d, this binary speaks %d", state[0], stateVersion)
	}
	flags := state[1]
	if flags&^flagNamed != 0 {
		return fmt.Errorf("sharedmem: unknown Memory flags %#x", flags)
	}
	size64 := binary.BigEndian.Uint64(state[4:])
	if size64 == 0 || size64 > math.MaxInt {
		return fmt.Errorf("%w: received a Memory of %d bytes", ErrSize, size64)
	}
	size := int(size64)
	name := string(state[memFixed:])
	if flags&flagNamed != 0 {
		n, err := checkName(name)
		if err != nil || n != name {
			return fmt.Errorf("sharedmem: received a bad block name %q", name)
		}
	} else if name != "" {
		return fmt.Errorf("sharedmem: anonymous Memory state carries a name")
	}
	fd, err := fds.Take(int(binary.BigEndian.Uint16(state[2:])))
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("sharedmem: fstat received block: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return fmt.Errorf("sharedmem: received descriptor is not a memory block")
	}
	if st.Size < int64(size) {
		unix.Close(fd)
		return fmt.Errorf("%w: received block has %d bytes, its handle says %d", ErrSize, st.Size, size)
	}
	if name == "" && !shm.SizeSealed(fd) {
		unix.Close(fd)
		return fmt.Errorf("sharedmem: received anonymous block is not size-sealed")
	}
	seg, err := shm.Map(fd, size)
	if err != nil {
		return sizeError(size, err)
	}
	nm := newMemory(seg, size, name)
	m.seg, m.size, m.name = nm.seg, nm.size, nm.name
	m.data.Store(nm.data.Load())
	return nil
}

// carrier is what an Array or a Value encodes itself as (through
// msgpack.CustomEncoder): msgpack maps an extension number to one Go type,
// and Array[T] is one type per T.
//
// want is set by the typed decoder before decoding (the code of its T); a
// carrier that msgpack makes on its own, for an interface-typed field, has
// none and refuses to decode rather than hand over an object of no usable
// type.
type carrier struct {
	want byte
	code byte
	m    *Memory
	lk   *lock.Lock
}

// valueCarrier is a carrier under its own extension number.
type valueCarrier carrier

// parts are the handles inside a carrier's state.
type parts struct {
	M *Memory
	L *lock.Lock
}

func (c *carrier) encode(fds *wire.Files) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{stateVersion, c.code})
	if err := wire.AppendTo(&buf, fds, parts{c.m, c.lk}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *valueCarrier) encode(fds *wire.Files) ([]byte, error) { return (*carrier)(c).encode(fds) }

func (c *carrier) decode(what string, state []byte, fds *wire.Files) error {
	if c.want == 0 {
		return fmt.Errorf("sharedmem: an %s in an interface-typed field cannot be rebuilt (its element type does not travel): use a field of type *sharedmem.%s[T]", what, what)
	}
	if len(state) < 2 {
		return fmt.Errorf("sharedmem: %s state too short (%d bytes)", what, len(state))
	}
	if state[0] != stateVersion {
		return fmt.Errorf("sharedmem: %s state version %d, this binary speaks %d", what, state[0], stateVersion)
	}
	if state[1] != c.want {
		return fmt.Errorf("sharedmem: received an %s of %s where one of %s was expected", what, elemName(state[1]), elemName(c.want))
	}
	var p parts
	if err := wire.Unmarshal(state[2:], fds, &p); err != nil {
		return err
	}
	if p.M == nil || p.L == nil {
		p.close()
		return fmt.Errorf("sharedmem: %s state without its memory or lock", what)
	}
	c.code, c.m, c.lk = state[1], p.M, p.L
	return nil
}

func (p parts) close() {
	if p.M != nil {
		p.M.Close()
	}
	if p.L != nil {
		p.L.Close()
	}
}

// Close closes what a carrier decoded; wire calls it when the value around
// it fails to decode. The Array or Value that took the parts shares them,
// so it is closed with it.
func (c *carrier) Close() error {
	parts{c.m, c.lk}.close()
	return nil
}

// Close is carrier.Close.
func (c *valueCarrier) Close() error { return (*carrier)(c).Close() }

// EncodeMsgpack lets an Array travel inside a process argument; it is not
// meant to be called directly.
func (a *Array[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	if a == nil {
		return enc.EncodeNil()
	}
	if a.m == nil || a.m.data.Load() == nil {
		return fmt.Errorf("sharedmem: cannot pass a closed Array: %w", ErrClosed)
	}
	return enc.Encode(&carrier{code: elemCode[T](), m: a.m, lk: a.lk})
}

// DecodeMsgpack rebuilds an Array received inside a process argument.
func (a *Array[T]) DecodeMsgpack(dec *msgpack.Decoder) error {
	c := &carrier{want: elemCode[T]()}
	if err := dec.Decode(&c); err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	var zero T
	es := int(elemCode[T]() & 0xf)
	if c.m.size%es != 0 {
		return fmt.Errorf("%w: received Array of %d bytes for %T elements", ErrSize, c.m.size, zero)
	}
	*a = Array[T]{m: c.m, lk: c.lk, n: c.m.size / es}
	return nil
}

// EncodeMsgpack lets a Value travel inside a process argument; it is not
// meant to be called directly.
func (v *Value[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	if v == nil {
		return enc.EncodeNil()
	}
	if v.p.Load() == nil {
		return fmt.Errorf("sharedmem: cannot pass a closed Value: %w", ErrClosed)
	}
	return enc.Encode(&valueCarrier{code: elemCode[T](), m: v.m, lk: v.lk})
}

// DecodeMsgpack rebuilds a Value received inside a process argument.
func (v *Value[T]) DecodeMsgpack(dec *msgpack.Decoder) error {
	c := &valueCarrier{want: elemCode[T]()}
	if err := dec.Decode(&c); err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	if c.m.size < 8 {
		return fmt.Errorf("%w: received Value of %d bytes", ErrSize, c.m.size)
	}
	v.m, v.lk = c.m, c.lk
	v.p.Store((*T)(unsafe.Pointer(c.m.data.Load())))
	return nil
}

//go:build linux

package msgp

import (
	"errors"
	"fmt"
)

var (
	// ErrShort reports a value that runs past the end of the buffer: it is
	// cut short, or a length or count in it claims more bytes than there
	// are.
	ErrShort = errors.New("msgp: truncated value")
	// ErrInvalid reports the code 0xc1, which msgpack never uses.
	ErrInvalid = errors.New("msgp: invalid code")
	// ErrDepth reports arrays and maps nested deeper than MaxDepth.
	ErrDepth = errors.New("msgp: nested too deep")
	// ErrType reports a value of another type than the reader's.
	ErrType = errors.New("msgp: wrong type")
	// ErrRange reports an integer the reader's type cannot hold.
	ErrRange = errors.New("msgp: integer out of range")
)

// MaxDepth is how deep non-empty arrays and maps may nest in a value that
// [Len] and [Walk] accept. Decoders recurse once per level, so peer input
// must not choose the depth; an empty container has no inside to recurse
// into and does not count.
const MaxDepth = 1000

// Type is the kind of a msgpack value, as its first byte tells.
type Type uint8

// The types. IntType and UintType distinguish the encodings, not the
// values: a positive fixint or a uint 8..64 is UintType, a negative fixint
// or an int 8..64 is IntType (whatever its sign).
const (
	InvalidType Type = iota // the code 0xc1, or no byte at all
	NilType
	BoolType
	IntType
	UintType
	Float32Type
	Float64Type
	StrType
	BinType
	ArrayType
	MapType
	ExtType
)

var typeNames = [...]string{
	InvalidType: "invalid",
	NilType:     "nil",
	BoolType:    "bool",
	IntType:     "int",
	UintType:    "uint",
	Float32Type: "float32",
	Float64Type: "float64",
	StrType:     "str",
	BinType:     "bin",
	ArrayType:   "array",
	MapType:     "map",
	ExtType:     "ext",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// NextType returns the type of the value at the start of b (InvalidType
// when b is empty). It looks at the first byte only.
func NextType(b []byte) Type {
	if len(b) == 0 {
		return InvalidType
	}
	return layouts[b[0]].typ
}

// layout says what follows a code byte. Every msgpack value is a code,
// then a big-endian length or count of lenSize bytes (none when the code
// holds it), then either its bytes or its elements.
type layout struct {
	typ Type
	// lenSize is 0, 1, 2 or 4.
	lenSize uint8
	// n is, for an array or a map without a count field, its count (of
	// elements, of pairs); for anything else the bytes after the code and
	// length besides the ones a length field counts: a scalar's payload, a
	// fixstr's length, an ext's type byte (and a fixext's data).
	n uint8
}

// layouts maps every code byte to its layout.
var layouts = func() (t [256]layout) {
	for c := range 256 {
		b := byte(c)
		switch {
		case b <= 0x7f:
			t[c] = layout{typ: UintType}
		case b <= 0x8f:
			t[c] = layout{typ: MapType, n: b & 0x0f}
		case b <= 0x9f:
			t[c] = layout{typ: ArrayType, n: b & 0x0f}
		case b <= 0xbf:
			t[c] = layout{typ: StrType, n: b & 0x1f}
		case b >= 0xe0:
			t[c] = layout{typ: IntType}
		}
	}
	sizes := [4]uint8{1, 2, 4, 8}
	for i := range 3 {
		t[0xc4+i] = layout{typ: BinType, lenSize: sizes[i]}
		t[0xc7+i] = layout{typ: ExtType, lenSize: sizes[i], n: 1}
		t[0xd9+i] = layout{typ: StrType, lenSize: sizes[i]}
	}
	for i := range 4 {
		t[0xcc+i] = layout{typ: UintType, n: sizes[i]}
		t[0xd0+i] = layout{typ: IntType, n: sizes[i]}
	}
	for i := range 5 {
		t[0xd4+i] = layout{typ: ExtType, n: 1 + 1<<i}
	}
	t[0xc0] = layout{typ: NilType}
	t[0xc1] = layout{typ: InvalidType}
	t[0xc2] = layout{typ: BoolType}
	t[0xc3] = layout{typ: BoolType}
	t[0xca] = layout{typ: Float32Type, n: 4}
	t[0xcb] = layout{typ: Float64Type, n: 8}
	t[0xdc] = layout{typ: ArrayType, lenSize: 2}
	t[0xdd] = layout{typ: ArrayType, lenSize: 4}
	t[0xde] = layout{typ: MapType, lenSize: 2}
	t[0xdf] = layout{typ: MapType, lenSize: 4}
	return t
}()

// count reads the length or count field of l at b[p:] and checks that it
// claims no more than the bytes after it. It returns the field's value and
// the position after it.
func (l layout) count(b []byte, p int) (int, int, error) {
	size := int(l.lenSize)
	if len(b)-p < size {
		return 0, 0, ErrShort
	}
	var n uint32
	switch size {
	case 1:
		n = uint32(b[p])
	case 2:
		n = uint32(b[p])<<8 | uint32(b[p+1])
	default:
		n = uint32(b[p])<<24 | uint32(b[p+1])<<16 | uint32(b[p+2])<<8 | uint32(b[p+3])
	}
	p += size
	if uint64(n) > uint64(len(b)-p) {
		return 0, 0, ErrShort
	}
	return int(n), p, nil
}

// typeError reports a value of type got where the reader wanted another.
func typeError(got Type, want string) error {
	return fmt.Errorf("%w: %s where %s was expected", ErrType, got, want)
}

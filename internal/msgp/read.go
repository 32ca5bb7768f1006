//go:build linux

package msgp

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Each Read function reads the value at the start of b and returns it with
// the number of bytes it took (0 on an error). Bytes after the value are
// not looked at.

// ReadBool reads true or false.
func ReadBool(b []byte) (bool, int, error) {
	if len(b) == 0 {
		return false, 0, ErrShort
	}
	switch b[0] {
	case 0xc2:
		return false, 1, nil
	case 0xc3:
		return true, 1, nil
	}
	return false, 0, typeError(layouts[b[0]].typ, "a bool")
}

// ReadInt reads an integer of any encoding whose value fits an int64.
func ReadInt(b []byte) (int64, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrShort
	}
	c := b[0]
	if c <= 0x7f || c >= 0xe0 {
		return int64(int8(c)), 1, nil
	}
	var n int
	switch c {
	case 0xcc, 0xd0:
		n = 2
	case 0xcd, 0xd1:
		n = 3
	case 0xce, 0xd2:
		n = 5
	case 0xcf, 0xd3:
		n = 9
	default:
		return 0, 0, typeError(layouts[c].typ, "an integer")
	}
	if len(b) < n {
		return 0, 0, ErrShort
	}
	switch c {
	case 0xcc:
		return int64(b[1]), n, nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(b[1:])), n, nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(b[1:])), n, nil
	case 0xcf:
		u := binary.BigEndian.Uint64(b[1:])
		if u > math.MaxInt64 {
			return 0, 0, fmt.Errorf("%w: %d overflows int64", ErrRange, u)
		}
		return int64(u), n, nil
	case 0xd0:
		return int64(int8(b[1])), n, nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(b[1:]))), n, nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(b[1:]))), n, nil
	}
	return int64(binary.BigEndian.Uint64(b[1:])), n, nil
}

// ReadUint reads an integer of any encoding whose value is not negative.
func ReadUint(b []byte) (uint64, int, error) {
	if len(b) > 0 && b[0] == 0xcf {
		if len(b) < 9 {
			return 0, 0, ErrShort
		}
		return binary.BigEndian.Uint64(b[1:]), 9, nil
	}
	v, n, err := ReadInt(b)
	if err != nil {
		return 0, 0, err
	}
	if v < 0 {
		return 0, 0, fmt.Errorf("%w: %d is negative", ErrRange, v)
	}
	return uint64(v), n, nil
}

// ReadFloat reads a float32 or a float64. It does not convert integers:
// whether an integer may stand for a float is the caller's choice.
func ReadFloat(b []byte) (float64, int, error) {
	switch t := NextType(b); t {
	case Float32Type:
		if len(b) < 5 {
			return 0, 0, ErrShort
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), 5, nil
	case Float64Type:
		if len(b) < 9 {
			return 0, 0, ErrShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b[1:])), 9, nil
	default:
		return 0, 0, readError(b, t, "a float")
	}
}

// ReadString reads a str (only: not a bin, not nil) into a new string.
func ReadString(b []byte) (string, int, error) {
	if t := NextType(b); t != StrType {
		return "", 0, readError(b, t, "a str")
	}
	s, n, err := blob(b)
	return string(s), n, err
}

// ReadBytes reads a str or a bin, and nil as a nil slice (an empty str or
// bin is an empty slice that is not nil). The result aliases b, with its
// capacity cut to its length so that appending to it copies.
func ReadBytes(b []byte) ([]byte, int, error) {
	if len(b) > 0 && b[0]&0xe0 == 0xa0 { // fixstr, the common case
		n := 1 + int(b[0]&0x1f)
		if n > len(b) {
			return nil, 0, ErrShort
		}
		return b[1:n:n], n, nil
	}
	switch t := NextType(b); t {
	case StrType, BinType:
		return blob(b)
	case NilType:
		return nil, 1, nil
	default:
		return nil, 0, readError(b, t, "a str or bin")
	}
}

// blob reads the str or bin at the start of b.
func blob(b []byte) ([]byte, int, error) {
	l := layouts[b[0]]
	n, p := int(l.n), 1
	if l.lenSize != 0 {
		var err error
		if n, p, err = l.count(b, p); err != nil {
			return nil, 0, err
		}
	}
	if n > len(b)-p {
		return nil, 0, ErrShort
	}
	return b[p : p+n : p+n], p + n, nil
}

// ReadArrayHeader reads the header of an array and returns its element
// count, as the header claims it, and the header's length.
func ReadArrayHeader(b []byte) (n, size int, err error) {
	return header(b, ArrayType, "an array")
}

// ReadMapHeader reads the header of a map and returns its pair count, as
// the header claims it, and the header's length.
func ReadMapHeader(b []byte) (n, size int, err error) {
	return header(b, MapType, "a map")
}

func header(b []byte, t Type, want string) (int, int, error) {
	if got := NextType(b); got != t {
		return 0, 0, readError(b, got, want)
	}
	l := layouts[b[0]]
	switch l.lenSize {
	case 0:
		return int(l.n), 1, nil
	case 2:
		if len(b) < 3 {
			return 0, 0, ErrShort
		}
		return int(binary.BigEndian.Uint16(b[1:])), 3, nil
	}
	if len(b) < 5 {
		return 0, 0, ErrShort
	}
	return int(binary.BigEndian.Uint32(b[1:])), 5, nil
}

// readError is the error of a reader that wanted something else than the
// value of type got at the start of b.
func readError(b []byte, got Type, want string) error {
	if len(b) == 0 {
		return ErrShort
	}
	return typeError(got, want)
}

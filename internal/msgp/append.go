//go:build linux

package msgp

import (
	"encoding/binary"
	"math"
)

// Each Append function appends one value in its shortest msgpack form and
// returns the extended slice, as the msgpack encoder does with compact
// ints: a non-negative int is written as the unsigned integer it equals,
// so that equal numbers are equal bytes whatever Go type they came from.

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendUint appends v in the shortest unsigned form.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendInt appends v: a non-negative v as [AppendUint] does, a negative
// one in the shortest signed form.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendFloat32 appends v as a float32.
func AppendFloat32(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(v))
}

// AppendFloat64 appends v as a float64.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

// AppendString appends s as a str.
func AppendString(b []byte, s string) []byte {
	if n := len(s); n <= 31 {
		b = append(b, 0xa0|byte(n))
	} else {
		b = appendLen8(b, 0xd9, n)
	}
	return append(b, s...)
}

// AppendBin appends v as a bin, and a nil v as nil (as the msgpack
// encoder writes a nil []byte).
func AppendBin(b, v []byte) []byte {
	if v == nil {
		return AppendNil(b)
	}
	return append(AppendBinHeader(b, len(v)), v...)
}

// AppendBinHeader appends the header of an n-byte bin (n at most
// math.MaxUint32); the caller sends its bytes after it.
func AppendBinHeader(b []byte, n int) []byte { return appendLen8(b, 0xc4, n) }

// AppendArrayHeader appends the header of an array of n elements; the
// caller appends the elements.
func AppendArrayHeader(b []byte, n int) []byte {
	if n <= 15 {
		return append(b, 0x90|byte(n))
	}
	return appendLen16(b, 0xdc, n)
}

// AppendMapHeader appends the header of a map of n pairs; the caller
// appends each key followed by its value.
func AppendMapHeader(b []byte, n int) []byte {
	if n <= 15 {
		return append(b, 0x80|byte(n))
	}
	return appendLen16(b, 0xde, n)
}

// appendLen8 appends the code and length of the shortest of a str's or a
// bin's 8, 16 and 32-bit forms that holds n; code8 is the 8-bit form's
// code (the others follow it).
func appendLen8(b []byte, code8 byte, n int) []byte {
	if n <= math.MaxUint8 {
		return append(b, code8, byte(n))
	}
	return appendLen16(b, code8+1, n)
}

// appendLen16 is appendLen8 for the 16 and 32-bit forms (the only ones
// an array or a map has besides its fix form).
func appendLen16(b []byte, code16 byte, n int) []byte {
	if n <= math.MaxUint16 {
		return append(b, code16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code16+1), uint32(n))
}

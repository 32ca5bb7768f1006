package pool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Task arguments and results cross the worker connections as msgpack, one
// value after another inside a chunk. A map of a trivial function over
// 200,000 ints spends most of its time here, so the common scalar types are
// encoded and decoded by hand (no reflection, no allocation per item) and
// everything else goes through one msgpack encoder or decoder per chunk.
// Both paths write standard msgpack, and the decoders accept every msgpack
// form of a value (any int width, str or bin), so either side may use
// either path.
//
// Handles (pipes, queues, locks, files) cannot be task arguments: the
// worker connections carry no descriptors, and the msgpack extension
// encoders of handle types refuse to run without the descriptor table
// (wire.ErrNoFiles). Pass them to the workers with Initializer instead.

var errShort = errors.New("truncated msgpack value")

// codec encodes and decodes one value of type T.
type codec[T any] struct {
	enc func(e *encState, b []byte, v *T) ([]byte, error)
	dec func(d *decState, v *T) error
}

// encState is the per-chunk state of the generic encoding path.
type encState struct {
	w   appendWriter
	enc *msgpack.Encoder
}

// appendWriter lets the msgpack encoder append to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

func (e *encState) encode(b []byte, v any) ([]byte, error) {
	if e.enc == nil {
		e.enc = msgpack.NewEncoder(&e.w)
		e.enc.UseCompactInts(true)
	}
	e.w.b = b
	err := e.enc.Encode(v)
	b = e.w.b
	e.w.b = nil
	return b, err
}

// decState reads msgpack values from a byte slice.
type decState struct {
	b   []byte
	p   int
	br  bytes.Reader
	dec *msgpack.Decoder
}

func (d *decState) reset(b []byte) {
	d.b = b
	d.p = 0
}

func (d *decState) remaining() int { return len(d.b) - d.p }

// decode decodes one value with the generic msgpack decoder. The value is
// measured first: the decoder sizes allocations by the counts the input
// claims, and recurses once per nesting level, so peer input is checked
// to claim no more than it holds and to nest at most maxDepth deep.
func (d *decState) decode(v any) error {
	n, err := valueLen(d.b[d.p:])
	if err != nil {
		return err
	}
	d.br.Reset(d.b[d.p : d.p+n])
	if d.dec == nil {
		d.dec = msgpack.NewDecoder(&d.br)
	} else {
		d.dec.Reset(&d.br)
	}
	err = d.dec.Decode(v)
	d.p += n
	return err
}

// skip steps over one value of any type.
func (d *decState) skip() error {
	n, err := valueLen(d.b[d.p:])
	d.p += n
	return err
}

const maxDepth = 1000

// valueLen returns the length of the msgpack value at the start of b,
// checking that every length and count it claims fits in b.
func valueLen(b []byte) (int, error) {
	pending := 1 // values still to read
	var depth []int
	p := 0
	for {
		for pending == 0 {
			if len(depth) == 0 {
				return p, nil
			}
			pending = depth[len(depth)-1]
			depth = depth[:len(depth)-1]
		}
		pending--
		if p >= len(b) {
			return p, errShort
		}
		c := b[p]
		p++
		var size, lenBytes, children int
		switch {
		case c <= 0x7f || c >= 0xe0:
		case c <= 0x8f:
			children = 2 * int(c&0x0f)
		case c <= 0x9f:
			children = int(c & 0x0f)
		case c <= 0xbf:
			size = int(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3:
			case 0xc4, 0xd9:
				lenBytes = 1
			case 0xc5, 0xda:
				lenBytes = 2
			case 0xc6, 0xdb:
				lenBytes = 4
			case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, then type
				lenBytes, size = 1<<(c-0xc7), 1
				if c == 0xc9 {
					lenBytes = 4
				}
			case 0xca, 0xce, 0xd2:
				size = 4
			case 0xcb, 0xcf, 0xd3:
				size = 8
			case 0xcc, 0xd0:
				size = 1
			case 0xcd, 0xd1:
				size = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16, plus type
				size = 1 + 1<<(c-0xd4)
			case 0xdc, 0xde:
				lenBytes = 2
			case 0xdd, 0xdf:
				lenBytes = 4
			default:
				return p, fmt.Errorf("msgpack: invalid code %#x", c)
			}
		}
		if lenBytes > 0 {
			if len(b)-p < lenBytes {
				return p, errShort
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(b[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(b[p:]))
			default:
				n = uint64(binary.BigEndian.Uint32(b[p:]))
			}
			p += lenBytes
			if n > uint64(len(b)) {
				return p, errShort
			}
			switch c {
			case 0xdc, 0xdd:
				children = int(n)
			case 0xde, 0xdf:
				children = 2 * int(n)
			default:
				size += int(n)
			}
		}
		if size > len(b)-p {
			return p, errShort
		}
		p += size
		if children > 0 {
			if children > len(b)-p { // every value takes a byte at least
				return p, errShort
			}
			if len(depth) >= maxDepth {
				return p, fmt.Errorf("msgpack: nested deeper than %d", maxDepth)
			}
			depth = append(depth, pending)
			pending = children
		}
	}
}

func (d *decState) byte1() (byte, error) {
	if d.p >= len(d.b) {
		return 0, errShort
	}
	c := d.b[d.p]
	d.p++
	return c, nil
}

func (d *decState) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.p {
		return nil, errShort
	}
	s := d.b[d.p : d.p+n]
	d.p += n
	return s, nil
}

// int64 reads any msgpack integer that fits an int64.
func (d *decState) int64() (int64, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	var n int
	switch c {
	case 0xcc, 0xd0:
		n = 1
	case 0xcd, 0xd1:
		n = 2
	case 0xce, 0xd2:
		n = 4
	case 0xcf, 0xd3:
		n = 8
	default:
		return 0, fmt.Errorf("msgpack: want an integer, got code %#x", c)
	}
	s, err := d.take(n)
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xcc:
		return int64(s[0]), nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(s)), nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(s)), nil
	case 0xcf:
		u := binary.BigEndian.Uint64(s)
		if u > math.MaxInt64 {
			return 0, fmt.Errorf("msgpack: %d overflows int64", u)
		}
		return int64(u), nil
	case 0xd0:
		return int64(int8(s[0])), nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(s))), nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(s))), nil
	default:
		return int64(binary.BigEndian.Uint64(s)), nil
	}
}

// uint64 reads any non-negative msgpack integer.
func (d *decState) uint64() (uint64, error) {
	if d.p < len(d.b) && d.b[d.p] == 0xcf {
		s, err := d.take(9)
		if err != nil {
			return 0, err
		}
		return binary.BigEndian.Uint64(s[1:]), nil
	}
	v, err := d.int64()
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("msgpack: %d is negative", v)
	}
	return uint64(v), nil
}

func (d *decState) float64() (float64, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xcb:
		s, err := d.take(8)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(s)), nil
	case 0xca:
		s, err := d.take(4)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(s))), nil
	}
	d.p--
	v, err := d.int64()
	return float64(v), err
}

// raw reads a str or bin value (nil reads as empty) without copying.
func (d *decState) raw() ([]byte, bool, error) {
	c, err := d.byte1()
	if err != nil {
		return nil, false, err
	}
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xc0:
		return nil, true, nil
	case c == 0xd9 || c == 0xc4:
		s, err := d.take(1)
		if err != nil {
			return nil, false, err
		}
		n = int(s[0])
	case c == 0xda || c == 0xc5:
		s, err := d.take(2)
		if err != nil {
			return nil, false, err
		}
		n = int(binary.BigEndian.Uint16(s))
	case c == 0xdb || c == 0xc6:
		s, err := d.take(4)
		if err != nil {
			return nil, false, err
		}
		n = int(binary.BigEndian.Uint32(s))
	default:
		return nil, false, fmt.Errorf("msgpack: want a string, got code %#x", c)
	}
	s, err := d.take(n)
	return s, false, err
}

func (d *decState) str() (string, error) {
	s, _, err := d.raw()
	return string(s), err
}

func (d *decState) bin() ([]byte, error) {
	s, isNil, err := d.raw()
	if err != nil || isNil {
		return nil, err
	}
	return bytes.Clone(s), nil
}

func (d *decState) boolean() (bool, error) {
	c, err := d.byte1()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	return false, fmt.Errorf("msgpack: want a bool, got code %#x", c)
}

func (d *decState) arrayLen() (int, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), nil
	case c == 0xdc:
		s, err := d.take(2)
		if err != nil {
			return 0, err
		}
		return int(binary.BigEndian.Uint16(s)), nil
	case c == 0xdd:
		s, err := d.take(4)
		if err != nil {
			return 0, err
		}
		return int(binary.BigEndian.Uint32(s)), nil
	}
	return 0, fmt.Errorf("msgpack: want an array, got code %#x", c)
}

func appendUint(b []byte, v uint64) []byte {
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

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
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

func appendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

func appendFloat32(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(v))
}

func appendStr[S string | []byte](b []byte, s S) []byte {
	n := len(s)
	switch {
	case n <= 31:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, s []byte) []byte {
	if s == nil {
		return append(b, 0xc0)
	}
	n := len(s)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, s...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// newCodec picks the hand-written path for the common scalar types and the
// msgpack encoder for everything else.
func newCodec[T any]() codec[T] {
	var z T
	switch any(z).(type) {
	case int:
		return intCodec[T, int]()
	case int64:
		return intCodec[T, int64]()
	case int32:
		return intCodec[T, int32]()
	case uint:
		return uintCodec[T, uint]()
	case uint64:
		return uintCodec[T, uint64]()
	case uint32:
		return uintCodec[T, uint32]()
	case float64:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return appendFloat64(b, *any(v).(*float64)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*float64), err = d.float64()
				return err
			},
		}
	case float32:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return appendFloat32(b, *any(v).(*float32)), nil
			},
			dec: func(d *decState, v *T) error {
				f, err := d.float64()
				*any(v).(*float32) = float32(f)
				return err
			},
		}
	case string:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return appendStr(b, *any(v).(*string)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*string), err = d.str()
				return err
			},
		}
	case []byte:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return appendBin(b, *any(v).(*[]byte)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*[]byte), err = d.bin()
				return err
			},
		}
	case bool:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				if *any(v).(*bool) {
					return append(b, 0xc3), nil
				}
				return append(b, 0xc2), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*bool), err = d.boolean()
				return err
			},
		}
	case struct{}:
		return codec[T]{
			enc: func(_ *encState, b []byte, _ *T) ([]byte, error) { return append(b, 0x80), nil },
			dec: func(d *decState, _ *T) error { return d.skip() },
		}
	}
	return codec[T]{
		enc: func(e *encState, b []byte, v *T) ([]byte, error) { return e.encode(b, v) },
		dec: func(d *decState, v *T) error { return d.decode(v) },
	}
}

func intCodec[T any, I int | int64 | int32]() codec[T] {
	return codec[T]{
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return appendInt(b, int64(*any(v).(*I))), nil
		},
		dec: func(d *decState, v *T) error {
			x, err := d.int64()
			if err == nil && int64(I(x)) != x {
				return fmt.Errorf("msgpack: %d overflows %T", x, I(0))
			}
			*any(v).(*I) = I(x)
			return err
		},
	}
}

func uintCodec[T any, U uint | uint64 | uint32]() codec[T] {
	return codec[T]{
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return appendUint(b, uint64(*any(v).(*U))), nil
		},
		dec: func(d *decState, v *T) error {
			x, err := d.uint64()
			if err == nil && uint64(U(x)) != x {
				return fmt.Errorf("msgpack: %d overflows %T", x, U(0))
			}
			*any(v).(*U) = U(x)
			return err
		},
	}
}

package manager

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"sort"

	"github.com/mpgo/multiprocessing/internal/wire"
)

// The server never decodes user values into Go types: it keeps them as the
// msgpack bytes the client sent and compares them byte for byte. What it
// must know about a value it learns by walking its bytes here: that it is
// one well-formed msgpack object (nothing malformed is ever stored or
// echoed), how long it is, and which shared objects it refers to (proxies
// travel as extension objects of type wire.ExtProxy), so that a stored
// value keeps them alive.

var errMalformed = errors.New("malformed msgpack")

// skipValue returns the length of the one msgpack object at the start of b.
// For every proxy extension met on the way it calls onProxy with the
// extension's payload (onProxy may be nil). It never recurses: msgpack
// announces element counts up front, so a running count of objects still
// to read is all the state a walk needs, whatever the nesting depth.
func skipValue(b []byte, onProxy func(payload []byte) error) (int, error) {
	return walk(b, onProxy, nil)
}

// walk is skipValue that also reports, through sawMap, whether the value
// holds a map of two or more pairs (whose order canonical fixes).
func walk(b []byte, onProxy func(payload []byte) error, sawMap *bool) (int, error) {
	pos := 0
	remaining := 1
	for remaining > 0 {
		remaining--
		if pos >= len(b) {
			return 0, errMalformed
		}
		c := b[pos]
		pos++
		var n, children int // payload bytes to skip; child objects to read
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c >= 0x80 && c <= 0x8f: // fixmap
			children = 2 * int(c&0x0f)
			if children >= 4 && sawMap != nil {
				*sawMap = true
			}
		case c >= 0x90 && c <= 0x9f: // fixarray
			children = int(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf: // fixstr
			n = int(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc4, 0xd9: // bin8, str8
				l, err := readLen(b, &pos, 1)
				if err != nil {
					return 0, err
				}
				n = l
			case 0xc5, 0xda:
				l, err := readLen(b, &pos, 2)
				if err != nil {
					return 0, err
				}
				n = l
			case 0xc6, 0xdb:
				l, err := readLen(b, &pos, 4)
				if err != nil {
					return 0, err
				}
				n = l
			case 0xc7, 0xc8, 0xc9: // ext8/16/32
				size := 1 << (c - 0xc7) // 1, 2, 4
				l, err := readLen(b, &pos, size)
				if err != nil {
					return 0, err
				}
				if err := ext(b, &pos, l, onProxy); err != nil {
					return 0, err
				}
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16
				if err := ext(b, &pos, 1<<(c-0xd4), onProxy); err != nil {
					return 0, err
				}
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				n = 4
			case 0xcb, 0xcf, 0xd3:
				n = 8
			case 0xcc, 0xd0:
				n = 1
			case 0xcd, 0xd1:
				n = 2
			case 0xdc, 0xde: // array16, map16
				l, err := readLen(b, &pos, 2)
				if err != nil {
					return 0, err
				}
				children = l
				if c == 0xde {
					children *= 2
					if sawMap != nil && l >= 2 {
						*sawMap = true
					}
				}
			case 0xdd, 0xdf:
				l, err := readLen(b, &pos, 4)
				if err != nil {
					return 0, err
				}
				children = l
				if c == 0xdf {
					children *= 2
					if sawMap != nil && l >= 2 {
						*sawMap = true
					}
				}
			default: // 0xc1 is never used
				return 0, errMalformed
			}
		}
		if n > len(b)-pos {
			return 0, errMalformed
		}
		pos += n
		// Every object takes at least one byte: a count larger than what
		// is left cannot be honest, and refusing it early also bounds
		// remaining.
		if children > len(b)-pos || remaining > len(b)-pos-children {
			return 0, errMalformed
		}
		remaining += children
	}
	return pos, nil
}

func readLen(b []byte, pos *int, size int) (int, error) {
	if len(b)-*pos < size {
		return 0, errMalformed
	}
	var l uint64
	switch size {
	case 1:
		l = uint64(b[*pos])
	case 2:
		l = uint64(binary.BigEndian.Uint16(b[*pos:]))
	case 4:
		l = uint64(binary.BigEndian.Uint32(b[*pos:]))
	}
	*pos += size
	if l > uint64(len(b)) {
		return 0, errMalformed
	}
	return int(l), nil
}

// ext skips an extension of payload length l whose type byte is at *pos.
func ext(b []byte, pos *int, l int, onProxy func([]byte) error) error {
	if len(b)-*pos < 1+l {
		return errMalformed
	}
	typ := int8(b[*pos])
	payload := b[*pos+1 : *pos+1+l]
	*pos += 1 + l
	if typ == wire.ExtProxy && onProxy != nil {
		return onProxy(payload)
	}
	return nil
}

// splitArray reads a msgpack array header at the start of b and returns the
// element count and the header length.
func arrayHeader(b []byte) (n, hlen int, err error) {
	if len(b) == 0 {
		return 0, 0, errMalformed
	}
	c := b[0]
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), 1, nil
	case c == 0xdc:
		pos := 1
		l, err := readLen(b, &pos, 2)
		return l, pos, err
	case c == 0xdd:
		pos := 1
		l, err := readLen(b, &pos, 4)
		return l, pos, err
	}
	return 0, 0, errMalformed
}

// mapHeader reads a msgpack map header and returns the pair count.
func mapHeader(b []byte) (n, hlen int, err error) {
	if len(b) == 0 {
		return 0, 0, errMalformed
	}
	c := b[0]
	switch {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), 1, nil
	case c == 0xde:
		pos := 1
		l, err := readLen(b, &pos, 2)
		return l, pos, err
	case c == 0xdf:
		pos := 1
		l, err := readLen(b, &pos, 4)
		return l, pos, err
	}
	return 0, 0, errMalformed
}

// appendArrayHeader appends a msgpack array header for n elements.
func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendMapHeader appends a msgpack map header for n pairs.
func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendUint appends u in its shortest msgpack form.
func appendUint(b []byte, u uint64) []byte {
	switch {
	case u <= 0x7f:
		return append(b, byte(u))
	case u <= math.MaxUint8:
		return append(b, 0xcc, byte(u))
	case u <= math.MaxUint16:
		return append(b, 0xcd, byte(u>>8), byte(u))
	case u <= math.MaxUint32:
		return append(b, 0xce, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
	}
}

// appendInt appends i in its shortest msgpack form, as the msgpack encoder
// does with compact ints (non-negative values as unsigned), so that the
// server's results compare equal, byte for byte, with client encodings.
func appendInt(b []byte, i int64) []byte {
	switch {
	case i >= 0:
		return appendUint(b, uint64(i))
	case i >= -32:
		return append(b, byte(i))
	case i >= math.MinInt8:
		return append(b, 0xd0, byte(i))
	case i >= math.MinInt16:
		return append(b, 0xd1, byte(i>>8), byte(i))
	case i >= math.MinInt32:
		return append(b, 0xd2, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(i))
	}
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

const msgpNil = 0xc0

// readUint reads an unsigned integer (any msgpack integer format holding a
// non-negative value) at the start of b; it returns the value and its
// length.
func readUint(b []byte) (uint64, int, error) {
	v, n, err := readNumber(b)
	if err != nil {
		return 0, 0, err
	}
	switch v.kind {
	case numUint:
		return v.u, n, nil
	case numInt:
		if v.i >= 0 {
			return uint64(v.i), n, nil
		}
	}
	return 0, 0, errMalformed
}

// readInt reads a signed integer that fits int64.
func readInt(b []byte) (int64, int, error) {
	v, n, err := readNumber(b)
	if err != nil {
		return 0, 0, err
	}
	switch v.kind {
	case numInt:
		return v.i, n, nil
	case numUint:
		if v.u <= math.MaxInt64 {
			return int64(v.u), n, nil
		}
	}
	return 0, 0, errMalformed
}

// readString reads a msgpack str at the start of b.
func readString(b []byte) (string, int, error) {
	if len(b) == 0 {
		return "", 0, errMalformed
	}
	c := b[0]
	pos := 1
	var l int
	var err error
	switch {
	case c >= 0xa0 && c <= 0xbf:
		l = int(c & 0x1f)
	case c == 0xd9:
		l, err = readLen(b, &pos, 1)
	case c == 0xda:
		l, err = readLen(b, &pos, 2)
	case c == 0xdb:
		l, err = readLen(b, &pos, 4)
	default:
		return "", 0, errMalformed
	}
	if err != nil || l > len(b)-pos {
		return "", 0, errMalformed
	}
	return string(b[pos : pos+l]), pos + l, nil
}

// readBytes reads a msgpack bin or str at the start of b (the payload
// aliases b).
func readBytes(b []byte) ([]byte, int, error) {
	if len(b) == 0 {
		return nil, 0, errMalformed
	}
	if b[0] == msgpNil {
		return nil, 1, nil
	}
	c := b[0]
	pos := 1
	var l int
	var err error
	switch {
	case c >= 0xa0 && c <= 0xbf:
		l = int(c & 0x1f)
	case c == 0xc4 || c == 0xd9:
		l, err = readLen(b, &pos, 1)
	case c == 0xc5 || c == 0xda:
		l, err = readLen(b, &pos, 2)
	case c == 0xc6 || c == 0xdb:
		l, err = readLen(b, &pos, 4)
	default:
		return nil, 0, errMalformed
	}
	if err != nil || l > len(b)-pos {
		return nil, 0, errMalformed
	}
	return b[pos : pos+l], pos + l, nil
}

type numKind uint8

const (
	numInt numKind = iota + 1
	numUint
	numFloat32
	numFloat64
)

// number is a decoded msgpack number.
type number struct {
	kind numKind
	i    int64
	u    uint64
	f    float64
}

// readNumber decodes the msgpack number at the start of b.
func readNumber(b []byte) (number, int, error) {
	if len(b) == 0 {
		return number{}, 0, errMalformed
	}
	c := b[0]
	need := func(n int) bool { return len(b) >= 1+n }
	switch {
	case c <= 0x7f:
		return number{kind: numUint, u: uint64(c)}, 1, nil
	case c >= 0xe0:
		return number{kind: numInt, i: int64(int8(c))}, 1, nil
	case c == 0xcc && need(1):
		return number{kind: numUint, u: uint64(b[1])}, 2, nil
	case c == 0xcd && need(2):
		return number{kind: numUint, u: uint64(binary.BigEndian.Uint16(b[1:]))}, 3, nil
	case c == 0xce && need(4):
		return number{kind: numUint, u: uint64(binary.BigEndian.Uint32(b[1:]))}, 5, nil
	case c == 0xcf && need(8):
		return number{kind: numUint, u: binary.BigEndian.Uint64(b[1:])}, 9, nil
	case c == 0xd0 && need(1):
		return number{kind: numInt, i: int64(int8(b[1]))}, 2, nil
	case c == 0xd1 && need(2):
		return number{kind: numInt, i: int64(int16(binary.BigEndian.Uint16(b[1:])))}, 3, nil
	case c == 0xd2 && need(4):
		return number{kind: numInt, i: int64(int32(binary.BigEndian.Uint32(b[1:])))}, 5, nil
	case c == 0xd3 && need(8):
		return number{kind: numInt, i: int64(binary.BigEndian.Uint64(b[1:]))}, 9, nil
	case c == 0xca && need(4):
		return number{kind: numFloat32, f: float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:])))}, 5, nil
	case c == 0xcb && need(8):
		return number{kind: numFloat64, f: math.Float64frombits(binary.BigEndian.Uint64(b[1:]))}, 9, nil
	}
	return number{}, 0, errNotNumber
}

var errNotNumber = errors.New("not a number")
var errOverflow = errors.New("overflow")

func (n number) isFloat() bool { return n.kind == numFloat32 || n.kind == numFloat64 }

func (n number) float() float64 {
	switch n.kind {
	case numInt:
		return float64(n.i)
	case numUint:
		return float64(n.u)
	}
	return n.f
}

func (n number) big() *big.Int {
	if n.kind == numUint {
		return new(big.Int).SetUint64(n.u)
	}
	return big.NewInt(n.i)
}

// addNumbers adds the msgpack numbers cur and delta and returns the sum,
// encoded. The result takes the delta's format, which is the format of the
// caller's value type: a float32 delta gives a float32, a float64 delta a
// float64, an integer delta the shortest integer encoding (which decodes
// into any integer type it fits). Integer sums that fit neither int64 nor
// uint64 are errOverflow.
func addNumbers(cur, delta []byte) ([]byte, error) {
	d, _, err := readNumber(delta)
	if err != nil {
		return nil, err
	}
	var c number
	if cur == nil {
		c = number{kind: numUint}
	} else if c, _, err = readNumber(cur); err != nil {
		return nil, err
	}
	if d.isFloat() || c.isFloat() {
		sum := c.float() + d.float()
		if d.kind == numFloat32 {
			return binary.BigEndian.AppendUint32([]byte{0xca}, math.Float32bits(float32(sum))), nil
		}
		return binary.BigEndian.AppendUint64([]byte{0xcb}, math.Float64bits(sum)), nil
	}
	// Fast path: both fit int64 and the sum does not overflow.
	ci, cok := c.int64()
	di, dok := d.int64()
	if cok && dok {
		s := ci + di
		if (s > ci) == (di > 0) {
			return appendInt(nil, s), nil
		}
	}
	s := new(big.Int).Add(c.big(), d.big())
	switch {
	case s.IsInt64():
		return appendInt(nil, s.Int64()), nil
	case s.IsUint64():
		return appendUint(nil, s.Uint64()), nil
	}
	return nil, errOverflow
}

func (n number) int64() (int64, bool) {
	if n.kind == numInt {
		return n.i, true
	}
	if n.u <= math.MaxInt64 {
		return int64(n.u), true
	}
	return 0, false
}

// maxCanonDepth bounds the nesting canonical rewrites; deeper values are
// stored as sent (their maps then compare in the order they came).
const maxCanonDepth = 256

// canonical returns v with the pairs of every map sorted by their encoded
// keys, so that equal values compare equal byte for byte whatever order
// the sender's map iteration produced (the msgpack encoder sorts only a
// few map types). A value without maps of two pairs or more is returned
// as is. v must be one well-formed msgpack object.
func canonical(v []byte) []byte {
	var maps bool
	if _, err := walk(v, nil, &maps); err != nil || !maps {
		return v
	}
	out, n, err := canonAppend(make([]byte, 0, len(v)), v, 0)
	if err != nil || n != len(v) {
		return v
	}
	return out
}

func canonAppend(dst, b []byte, depth int) ([]byte, int, error) {
	if depth > maxCanonDepth {
		return nil, 0, errMalformed
	}
	if n, hlen, err := mapHeader(b); err == nil {
		type pair struct{ k, kv []byte }
		pairs := make([]pair, 0, n)
		pos := hlen
		for range n {
			k, kn, err := canonAppend(nil, b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			pos += kn
			kv, vn, err := canonAppend(k, b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			pos += vn
			pairs = append(pairs, pair{k: kv[:len(k)], kv: kv})
		}
		sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
		dst = appendMapHeader(dst, n)
		for _, p := range pairs {
			dst = append(dst, p.kv...)
		}
		return dst, pos, nil
	}
	if n, hlen, err := arrayHeader(b); err == nil {
		dst = appendArrayHeader(dst, n)
		pos := hlen
		for range n {
			var k int
			var err error
			dst, k, err = canonAppend(dst, b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			pos += k
		}
		return dst, pos, nil
	}
	n, err := skipValue(b, nil)
	if err != nil {
		return nil, 0, err
	}
	return append(dst, b[:n]...), n, nil
}

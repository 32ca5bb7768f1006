//go:build linux

package manager

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"math/bits"
	"reflect"
	"sort"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
)

// The server never decodes user values into Go types: it keeps them as the
// msgpack bytes the client sent and compares them byte for byte. What it
// must know about a value it learns by walking its bytes (with
// internal/msgp): that it is one well-formed msgpack object (nothing
// malformed is ever stored or echoed), how long it is, and which shared
// objects it refers to (proxies travel as extension objects of type
// wire.ExtProxy), so that a stored value keeps them alive.

var errMalformed = errors.New("malformed msgpack")

// skipValue returns the length of the one msgpack object at the start of b.
// For every proxy extension met on the way it calls onProxy with the
// extension's payload (onProxy may be nil). A malformed value (one that
// msgp.Len refuses: short, invalid, or nested deeper than msgp.MaxDepth)
// is errMalformed; an error of onProxy is returned as it is.
func skipValue(b []byte, onProxy func(payload []byte) error) (int, error) {
	var v *msgp.Visitor
	var proxyErr error
	if onProxy != nil {
		v = &msgp.Visitor{Ext: func(typ int8, data []byte) error {
			if typ != wire.ExtProxy {
				return nil
			}
			proxyErr = onProxy(data)
			return proxyErr
		}}
	}
	n, err := msgp.Walk(b, v)
	switch {
	case err == nil:
		return n, nil
	case proxyErr != nil:
		return 0, proxyErr
	}
	return 0, errMalformed
}

// number is a decoded msgpack number. Its kind is the type of its
// encoding: msgp.IntType, msgp.UintType, msgp.Float32Type or
// msgp.Float64Type.
type number struct {
	kind msgp.Type
	i    int64
	u    uint64
	f    float64
}

// readNumber decodes the msgpack number at the start of b.
func readNumber(b []byte) (number, error) {
	n := number{kind: msgp.NextType(b)}
	var err error
	switch n.kind {
	case msgp.IntType:
		n.i, _, err = msgp.ReadInt(b)
	case msgp.UintType:
		n.u, _, err = msgp.ReadUint(b)
	case msgp.Float32Type, msgp.Float64Type:
		n.f, _, err = msgp.ReadFloat(b)
	default:
		err = errNotNumber
	}
	if err != nil {
		return number{}, errNotNumber
	}
	return n, nil
}

var errNotNumber = errors.New("not a number")
var errOverflow = errors.New("overflow")

func (n number) isFloat() bool { return n.kind == msgp.Float32Type || n.kind == msgp.Float64Type }

func (n number) float() float64 {
	switch n.kind {
	case msgp.IntType:
		return float64(n.i)
	case msgp.UintType:
		return float64(n.u)
	}
	return n.f
}

func (n number) big() *big.Int {
	if n.kind == msgp.UintType {
		return new(big.Int).SetUint64(n.u)
	}
	return big.NewInt(n.i)
}

// addTyped is addNumbers with the sum checked against type t.
func addTyped(cur, delta []byte, t numType) ([]byte, error) {
	sum, err := addNumbers(cur, delta)
	if err != nil || t == numAny {
		return sum, err
	}
	s, err := readNumber(sum)
	if err != nil {
		return nil, err
	}
	var c number
	if cur != nil {
		c, _ = readNumber(cur)
	}
	d, _ := readNumber(delta)
	if !t.fits(s, c, d) {
		return nil, errOverflow
	}
	return sum, nil
}

// addNumbers adds the msgpack numbers cur and delta and returns the sum,
// encoded. The result takes the delta's format, which is the format of the
// caller's value type: a float32 delta gives a float32, a float64 delta a
// float64, an integer delta the shortest integer encoding (which decodes
// into any integer type it fits). Integer sums that fit neither int64 nor
// uint64 are errOverflow.
func addNumbers(cur, delta []byte) ([]byte, error) {
	d, err := readNumber(delta)
	if err != nil {
		return nil, err
	}
	var c number
	if cur == nil {
		c = number{kind: msgp.UintType}
	} else if c, err = readNumber(cur); err != nil {
		return nil, err
	}
	if d.isFloat() || c.isFloat() {
		sum := c.float() + d.float()
		if d.kind == msgp.Float32Type {
			return msgp.AppendFloat32(nil, float32(sum)), nil
		}
		return msgp.AppendFloat64(nil, sum), nil
	}
	// Fast path: both fit int64 and the sum does not overflow.
	ci, cok := c.int64()
	di, dok := d.int64()
	if cok && dok {
		s := ci + di
		if (s > ci) == (di > 0) {
			return msgp.AppendInt(nil, s), nil
		}
	}
	s := new(big.Int).Add(c.big(), d.big())
	switch {
	case s.IsInt64():
		return msgp.AppendInt(nil, s.Int64()), nil
	case s.IsUint64():
		return msgp.AppendUint(nil, s.Uint64()), nil
	}
	return nil, errOverflow
}

// numType is the Go type of the values an Add works on, sent by the client
// with the request (the server only sees msgpack numbers): the sum must
// fit it, else the Add is errOverflow and nothing changes. numAny (V is an
// interface) checks only what msgpack can hold.
type numType uint8

const (
	numAny numType = iota
	numInt8
	numInt16
	numInt32
	numInt64
	numUint8
	numUint16
	numUint32
	numUint64
	numFloat32
	numFloat64
	numEnd
)

// numTypeOf returns the numType of Go type t.
func numTypeOf(t reflect.Type) numType {
	switch t.Kind() {
	case reflect.Int8:
		return numInt8
	case reflect.Int16:
		return numInt16
	case reflect.Int32:
		return numInt32
	case reflect.Int64:
		return numInt64
	case reflect.Int:
		return numInt8 + numType(bits.Len(uint(t.Size()))-1) // int32 or int64
	case reflect.Uint8:
		return numUint8
	case reflect.Uint16:
		return numUint16
	case reflect.Uint32:
		return numUint32
	case reflect.Uint64:
		return numUint64
	case reflect.Uint, reflect.Uintptr:
		return numUint8 + numType(bits.Len(uint(t.Size()))-1)
	case reflect.Float32:
		return numFloat32
	case reflect.Float64:
		return numFloat64
	}
	return numAny
}

// fits reports whether the sum s (of cur and delta) fits type t: an
// integer within its range, a float not rounded to an infinity that
// neither operand was.
func (t numType) fits(s, cur, delta number) bool {
	if s.isFloat() {
		return !math.IsInf(s.f, 0) || math.IsInf(cur.float(), 0) || math.IsInf(delta.float(), 0)
	}
	var lo, hi float64 // exact for the bounds compared below
	switch t {
	case numInt8:
		lo, hi = math.MinInt8, math.MaxInt8
	case numInt16:
		lo, hi = math.MinInt16, math.MaxInt16
	case numInt32:
		lo, hi = math.MinInt32, math.MaxInt32
	case numInt64:
		return s.kind == msgp.IntType || s.u <= math.MaxInt64
	case numUint8:
		lo, hi = 0, math.MaxUint8
	case numUint16:
		lo, hi = 0, math.MaxUint16
	case numUint32:
		lo, hi = 0, math.MaxUint32
	case numUint64:
		return s.kind == msgp.UintType || s.i >= 0
	default:
		return true
	}
	if s.kind == msgp.UintType {
		return lo <= float64(s.u) && float64(s.u) <= hi
	}
	return lo <= float64(s.i) && float64(s.i) <= hi
}

func (n number) int64() (int64, bool) {
	if n.kind == msgp.IntType {
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
	_, err := msgp.Walk(v, &msgp.Visitor{Map: func(pairs int) error {
		maps = maps || pairs >= 2
		return nil
	}})
	if err != nil || !maps {
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
	switch msgp.NextType(b) {
	case msgp.MapType:
		n, pos, err := msgp.ReadMapHeader(b)
		if err != nil {
			return nil, 0, err
		}
		type pair struct{ k, kv []byte }
		pairs := make([]pair, 0, n)
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
		dst = msgp.AppendMapHeader(dst, n)
		for _, p := range pairs {
			dst = append(dst, p.kv...)
		}
		return dst, pos, nil
	case msgp.ArrayType:
		n, pos, err := msgp.ReadArrayHeader(b)
		if err != nil {
			return nil, 0, err
		}
		dst = msgp.AppendArrayHeader(dst, n)
		for range n {
			var k int
			dst, k, err = canonAppend(dst, b[pos:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			pos += k
		}
		return dst, pos, nil
	}
	n, err := msgp.Len(b)
	if err != nil {
		return nil, 0, err
	}
	return append(dst, b[:n]...), n, nil
}

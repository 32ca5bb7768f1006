//go:build linux

package pool

import (
	"bytes"
	"fmt"
	"math"
	"reflect"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
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

// codec encodes and decodes one value of type T.
type codec[T any] struct {
	enc func(e *encState, b []byte, v *T) ([]byte, error)
	dec func(d *decState, v *T) error
	// okRun, when set, decodes a run of result records: while the next
	// record is statusOK with a value of the common form and dst has room,
	// it decodes the value into dst, in order, and returns how many it
	// decoded. Any other record is left to the caller. One call per run
	// instead of one per item: the parent decodes every result of a map.
	okRun func(d *decState, dst []T) int
	// encRun, when set, appends the encodings of vs, one after another:
	// one call per chunk instead of one per item.
	encRun func(b []byte, vs []T) []byte
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

// decode decodes one value with the generic msgpack decoder. The value is
// measured first: the decoder sizes allocations by the counts the input
// claims, and recurses once per nesting level, so peer input is checked
// to claim no more than it holds and to nest at most msgp.MaxDepth deep.
func (d *decState) decode(v any) error {
	n, err := msgp.Len(d.b[d.p:])
	if err != nil {
		return err
	}
	b := d.b[d.p : d.p+n]
	d.p += n
	// The module's decoding rules (no silent narrowing, struct fields,
	// the decode budget) hold here too: results may come from another
	// host (pool.Open).
	if err := wire.Admit(b, v); err != nil {
		return err
	}
	d.br.Reset(b)
	if d.dec == nil {
		d.dec = msgpack.NewDecoder(&d.br)
	} else {
		d.dec.Reset(&d.br)
	}
	return wire.Decode(d.dec, v)
}

// skip steps over one value of any type.
func (d *decState) skip() error {
	n, err := msgp.Len(d.b[d.p:])
	d.p += n
	return err
}

func (d *decState) byte1() (byte, error) {
	if d.p >= len(d.b) {
		return 0, msgp.ErrShort
	}
	c := d.b[d.p]
	d.p++
	return c, nil
}

// The readers below read one value at d's position with the msgp reader
// of its type, and step over it. (Their named results keep them within
// the compiler's inlining budget: they run once per task argument and
// result.)

// int64 reads any msgpack integer that fits an int64.
func (d *decState) int64() (v int64, err error) {
	var n int
	v, n, err = msgp.ReadInt(d.b[d.p:])
	d.p += n
	return
}

// number reads an integer of any width: its value as an int64, or as a
// uint64 with big set when it is above math.MaxInt64. nil reads as 0, as
// the module's other decoders read it.
func (d *decState) number() (i int64, u uint64, big bool, err error) {
	b := d.b[d.p:]
	var n int
	if i, n, err = msgp.ReadInt(b); err == nil {
		d.p += n
		return i, uint64(i), false, nil
	}
	switch msgp.NextType(b) {
	case msgp.NilType:
		d.p++
		return 0, 0, false, nil
	case msgp.UintType: // above math.MaxInt64
		if u, n, err = msgp.ReadUint(b); err == nil {
			d.p += n
			return int64(u), u, u > math.MaxInt64, nil
		}
	}
	return 0, 0, false, err
}

// float64 reads a float, or an integer (any msgpack form of a number is
// accepted, as the module's other decoders accept it), or nil as 0.
func (d *decState) float64() (v float64, err error) {
	switch msgp.NextType(d.b[d.p:]) {
	case msgp.IntType, msgp.UintType, msgp.NilType:
		i, u, big, err := d.number()
		if big {
			return float64(u), err
		}
		return float64(i), err
	}
	var n int
	v, n, err = msgp.ReadFloat(d.b[d.p:])
	d.p += n
	return
}

// rangeError is the error of a number that does not fit the Go type it is
// decoded into (it would overflow or change sign), in the words of the
// module's other decoders; it matches msgp.ErrRange.
func rangeError(v any, zero any) error {
	return fmt.Errorf("cannot decode number %v into Go value of type %T: it does not fit: %w", v, zero, msgp.ErrRange)
}

// decInt reads an integer that fits I; anything else is an error, never a
// narrowed value.
func decInt[I int | int64 | int32 | int16 | int8](d *decState) (I, error) {
	i, u, big, err := d.number()
	switch {
	case err != nil:
		return 0, err
	case big:
		return 0, rangeError(u, I(0))
	case int64(I(i)) != i:
		return 0, rangeError(i, I(0))
	}
	return I(i), nil
}

// decUint reads an integer that fits U: not negative, not too large.
func decUint[U uint | uint64 | uint32 | uint16 | uint8](d *decState) (U, error) {
	i, u, big, err := d.number()
	switch {
	case err != nil:
		return 0, err
	case !big && i < 0:
		return 0, rangeError(i, U(0))
	case uint64(U(u)) != u:
		return 0, rangeError(u, U(0))
	}
	return U(u), nil
}

// raw reads a str or a bin (nil reads as a nil slice) without copying.
func (d *decState) raw() (s []byte, err error) {
	var n int
	s, n, err = msgp.ReadBytes(d.b[d.p:])
	d.p += n
	return
}

func (d *decState) str() (string, error) {
	s, err := d.raw()
	return string(s), err
}

func (d *decState) bin() ([]byte, error) {
	s, err := d.raw()
	return bytes.Clone(s), err
}

func (d *decState) boolean() (v bool, err error) {
	var n int
	v, n, err = msgp.ReadBool(d.b[d.p:])
	d.p += n
	return
}

func (d *decState) arrayLen() (int, error) {
	v, n, err := msgp.ReadArrayHeader(d.b[d.p:])
	d.p += n
	return v, err
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
	case int16:
		return intCodec[T, int16]()
	case int8:
		return intCodec[T, int8]()
	case uint:
		return uintCodec[T, uint]()
	case uint64:
		return uintCodec[T, uint64]()
	case uint32:
		return uintCodec[T, uint32]()
	case uint16:
		return uintCodec[T, uint16]()
	case uint8:
		return uintCodec[T, uint8]()
	case float64:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return msgp.AppendFloat64(b, *any(v).(*float64)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*float64), err = d.float64()
				return err
			},
		}
	case float32:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return msgp.AppendFloat32(b, *any(v).(*float32)), nil
			},
			dec: func(d *decState, v *T) error {
				f, err := d.float64()
				if err == nil && math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
					f, err = 0, rangeError(f, float32(0))
				}
				*any(v).(*float32) = float32(f)
				return err
			},
		}
	case string:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return msgp.AppendString(b, *any(v).(*string)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*string), err = d.str()
				return err
			},
		}
	case []byte:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return msgp.AppendBin(b, *any(v).(*[]byte)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*[]byte), err = d.bin()
				return err
			},
		}
	case bool:
		return codec[T]{
			enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
				return msgp.AppendBool(b, *any(v).(*bool)), nil
			},
			dec: func(d *decState, v *T) (err error) {
				*any(v).(*bool), err = d.boolean()
				return err
			},
		}
	case struct{}:
		return codec[T]{
			enc: func(_ *encState, b []byte, _ *T) ([]byte, error) { return msgp.AppendMapHeader(b, 0), nil },
			dec: func(d *decState, _ *T) error { return d.skip() },
		}
	}
	if reflect.TypeFor[T]() == reflect.TypeFor[any]() {
		return codec[T]{
			enc: func(e *encState, b []byte, v *T) ([]byte, error) { return e.encode(b, v) },
			dec: func(d *decState, v *T) error { return d.anyValue(any(v).(*any)) },
		}
	}
	return codec[T]{
		enc: func(e *encState, b []byte, v *T) ([]byte, error) { return e.encode(b, v) },
		dec: func(d *decState, v *T) error { return d.decode(v) },
	}
}

// anyValue decodes a value into an any as the module's other decoders do:
// an integer is an int64 (a uint64 only above math.MaxInt64), a float is a
// float64, whatever width was sent; scalars here, without reflection, the
// rest by the msgpack decoder.
func (d *decState) anyValue(v *any) (err error) {
	switch msgp.NextType(d.b[d.p:]) {
	case msgp.NilType:
		d.p++
		*v = nil
	case msgp.IntType, msgp.UintType:
		i, u, big, err := d.number()
		if err != nil {
			return err
		}
		if big {
			*v = u
		} else {
			*v = i
		}
	case msgp.Float32Type, msgp.Float64Type:
		var f float64
		f, err = d.float64()
		*v = f
	case msgp.BoolType:
		var b bool
		b, err = d.boolean()
		*v = b
	case msgp.StrType:
		var s string
		s, err = d.str()
		*v = s
	case msgp.BinType:
		var b []byte
		b, err = d.bin()
		*v = b
	default:
		*v = nil // msgpack would merge into what v holds
		return d.decode(v)
	}
	return err
}

func intCodec[T any, I int | int64 | int32 | int16 | int8]() codec[T] {
	return codec[T]{
		// The common case only: anything unusual (nil, a number that does
		// not fit) is left to dec, record by record, which says what is
		// wrong.
		okRun: func(d *decState, dst []T) int {
			b, p := d.b, d.p
			ds := any(dst).([]I) // T is I
			for i := range ds {
				if p >= len(b) || b[p] != statusOK {
					d.p = p
					return i
				}
				x, n, err := msgp.ReadInt(b[p+1:])
				if err != nil || int64(I(x)) != x {
					d.p = p
					return i
				}
				ds[i] = I(x)
				p += 1 + n
			}
			d.p = p
			return len(ds)
		},
		encRun: func(b []byte, vs []T) []byte {
			for _, v := range any(vs).([]I) {
				b = msgp.AppendInt(b, int64(v))
			}
			return b
		},
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return msgp.AppendInt(b, int64(*any(v).(*I))), nil
		},
		dec: func(d *decState, v *T) (err error) {
			*any(v).(*I), err = decInt[I](d)
			return err
		},
	}
}

func uintCodec[T any, U uint | uint64 | uint32 | uint16 | uint8]() codec[T] {
	return codec[T]{
		okRun: func(d *decState, dst []T) int {
			b, p := d.b, d.p
			ds := any(dst).([]U) // T is U
			for i := range ds {
				if p >= len(b) || b[p] != statusOK {
					d.p = p
					return i
				}
				x, n, err := msgp.ReadUint(b[p+1:])
				if err != nil || uint64(U(x)) != x {
					d.p = p
					return i
				}
				ds[i] = U(x)
				p += 1 + n
			}
			d.p = p
			return len(ds)
		},
		encRun: func(b []byte, vs []T) []byte {
			for _, v := range any(vs).([]U) {
				b = msgp.AppendUint(b, uint64(v))
			}
			return b
		},
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return msgp.AppendUint(b, uint64(*any(v).(*U))), nil
		},
		dec: func(d *decState, v *T) (err error) {
			*any(v).(*U), err = decUint[U](d)
			return err
		},
	}
}

package pool

import (
	"bytes"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
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
	// record is statusOK and dst has room, it decodes the record's value
	// into dst, in order. It returns how many it decoded; on an error, the
	// record of dst[n] is the one that failed. One call per run instead of
	// one per item: the parent decodes every result of a map.
	okRun func(d *decState, dst []T) (n int, err error)
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

// uint64 reads any non-negative msgpack integer.
func (d *decState) uint64() (v uint64, err error) {
	var n int
	v, n, err = msgp.ReadUint(d.b[d.p:])
	d.p += n
	return
}

// float64 reads a float, or an integer that fits an int64 (any msgpack
// form of a number is accepted).
func (d *decState) float64() (v float64, err error) {
	if t := msgp.NextType(d.b[d.p:]); t == msgp.IntType || t == msgp.UintType {
		i, err := d.int64()
		return float64(i), err
	}
	var n int
	v, n, err = msgp.ReadFloat(d.b[d.p:])
	d.p += n
	return
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
	case uint:
		return uintCodec[T, uint]()
	case uint64:
		return uintCodec[T, uint64]()
	case uint32:
		return uintCodec[T, uint32]()
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
	return codec[T]{
		enc: func(e *encState, b []byte, v *T) ([]byte, error) { return e.encode(b, v) },
		dec: func(d *decState, v *T) error { return d.decode(v) },
	}
}

func intCodec[T any, I int | int64 | int32]() codec[T] {
	return codec[T]{
		okRun: func(d *decState, dst []T) (int, error) {
			b, p := d.b, d.p
			for i := range dst {
				if p >= len(b) || b[p] != statusOK {
					d.p = p
					return i, nil
				}
				x, n, err := msgp.ReadInt(b[p+1:])
				if err == nil && int64(I(x)) != x {
					err = fmt.Errorf("msgpack: %d overflows %T", x, I(0))
				}
				if err != nil {
					d.p = p + 1
					return i, err
				}
				*any(&dst[i]).(*I) = I(x)
				p += 1 + n
			}
			d.p = p
			return len(dst), nil
		},
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return msgp.AppendInt(b, int64(*any(v).(*I))), nil
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
		okRun: func(d *decState, dst []T) (int, error) {
			b, p := d.b, d.p
			for i := range dst {
				if p >= len(b) || b[p] != statusOK {
					d.p = p
					return i, nil
				}
				x, n, err := msgp.ReadUint(b[p+1:])
				if err == nil && uint64(U(x)) != x {
					err = fmt.Errorf("msgpack: %d overflows %T", x, U(0))
				}
				if err != nil {
					d.p = p + 1
					return i, err
				}
				*any(&dst[i]).(*U) = U(x)
				p += 1 + n
			}
			d.p = p
			return len(dst), nil
		},
		enc: func(_ *encState, b []byte, v *T) ([]byte, error) {
			return msgp.AppendUint(b, uint64(*any(v).(*U))), nil
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

//go:build linux

package wire

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/vmihailenco/msgpack/v5"
)

// Slices of numbers ([]float64, []int32, ...) are encoded and decoded here
// by a loop over the slice. msgpack/v5 goes through reflection and its
// writer once per element, which made a 1 MiB []float64 cost some 7 ms
// each way, slower than the pipe it travels on.
//
// The bytes are exactly msgpack's, so that peers (other Go programs,
// Python's msgpack) read them unchanged: an array whose elements are what
// msgpack writes for each element type under the encoder's settings
// (compact ints, compact floats). Decoding keeps the rules of decode.go
// element by element: nil is zero, an integer that does not fit is a
// *DecodeError, a value of another kind too.
//
// The element type must be the Go type itself (float64, not a named type,
// which may have methods); otherwise msgpack's way is taken. A slice type
// with methods of its own never gets here: msgpack looks for them first.
// (A codec registered with msgpack.Register for float64 itself is not
// used for the elements of a []float64: decode.go replaces those of the
// numbers for the whole process already.)

//go:linkname msgpackKindEncoders github.com/vmihailenco/msgpack/v5.valueEncoders
var msgpackKindEncoders []func(*msgpack.Encoder, reflect.Value) error

// msgpack's own slice codecs, for every slice this file does not take.
var (
	sliceEncoder func(*msgpack.Encoder, reflect.Value) error
	sliceDecoder func(*msgpack.Decoder, reflect.Value) error
)

// numCodec is the loop pair of one element type.
type numCodec struct {
	elem reflect.Type
	enc  func(e *msgpack.Encoder, v reflect.Value, flags uint32) error
	dec  func(d *msgpack.Decoder, v reflect.Value) error
}

// numCodecs is indexed by the element's kind.
var numCodecs [reflect.Float64 + 1]*numCodec

// The encoder's settings, read from its flags field (msgpack has no
// accessor). encoderFlagsOK is false if the field is not where this
// msgpack version keeps it: encoding then stays with msgpack.
const (
	flagCompactInts   = 1 << 2
	flagCompactFloats = 1 << 3
)

var (
	encoderFlagsOffset uintptr
	encoderFlagsOK     bool
)

func encoderFlags(e *msgpack.Encoder) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(e), encoderFlagsOffset))
}

func init() {
	if f, ok := reflect.TypeFor[msgpack.Encoder]().FieldByName("flags"); ok && f.Type.Kind() == reflect.Uint32 {
		encoderFlagsOffset = f.Offset
		e := msgpack.NewEncoder(nil)
		f0 := encoderFlags(e)
		e.UseCompactInts(true)
		f1 := encoderFlags(e)
		e.UseCompactFloats(true)
		e.UseCompactInts(false)
		f2 := encoderFlags(e)
		encoderFlagsOK = f0 == 0 && f1 == flagCompactInts && f2 == flagCompactFloats
	}

	addNumCodec(signedCodec[int]())
	addNumCodec(signedCodec[int8]())
	addNumCodec(signedCodec[int16]())
	addNumCodec(signedCodec[int32]())
	addNumCodec(signedCodec[int64]())
	addNumCodec(unsignedCodec[uint]())
	addNumCodec(unsignedCodec[uint16]())
	addNumCodec(unsignedCodec[uint32]())
	addNumCodec(unsignedCodec[uint64]())
	addNumCodec(floatCodec[float32]())
	addNumCodec(floatCodec[float64]())

	// Every slice type reaches msgpack's kind table unless it has methods
	// or a registered codec; the slices of plain Go numbers are also
	// registered by type, in case one was used before this init.
	sliceEncoder = msgpackKindEncoders[reflect.Slice]
	sliceDecoder = msgpackKindDecoders[reflect.Slice]
	if encoderFlagsOK {
		msgpackKindEncoders[reflect.Slice] = encodeSliceValue
	}
	msgpackKindDecoders[reflect.Slice] = decodeSliceValue
	for _, c := range numCodecs {
		if c == nil {
			continue
		}
		var enc func(*msgpack.Encoder, reflect.Value) error
		if encoderFlagsOK {
			enc = encodeSliceValue
		}
		msgpack.Register(reflect.Zero(reflect.SliceOf(c.elem)).Interface(), enc, decodeSliceValue)
	}
}

func addNumCodec(c *numCodec) { numCodecs[c.elem.Kind()] = c }

// codecOf returns the loops for slices of t's elements, or nil.
func codecOf(t reflect.Type) *numCodec {
	et := t.Elem()
	k := et.Kind()
	if k >= reflect.Kind(len(numCodecs)) {
		return nil
	}
	c := numCodecs[k]
	if c == nil || c.elem != et {
		return nil
	}
	return c
}

func encodeSliceValue(e *msgpack.Encoder, v reflect.Value) error {
	c := codecOf(v.Type())
	if c == nil {
		return sliceEncoder(e, v)
	}
	if v.IsNil() {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(v.Len()); err != nil {
		return err
	}
	return c.enc(e, v, encoderFlags(e))
}

func decodeSliceValue(d *msgpack.Decoder, v reflect.Value) error {
	c := codecOf(v.Type())
	if c == nil || !v.CanSet() {
		return sliceDecoder(d, v)
	}
	if _, ok := d.Buffered().(byteSource); !ok {
		return sliceDecoder(d, v)
	}
	return c.dec(d, v)
}

// --- encoding ---

// encChunk is how many elements are encoded into the scratch buffer before
// it goes to the writer: at most 9 bytes each, the buffer stays in cache.
const encChunk = 4096

var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 9*encChunk)
	return &b
}}

// writeNums encodes s through e's writer in chunks; appendRun appends the
// encoding of a run of elements.
func writeNums[T any](e *msgpack.Encoder, s []T, size int, appendRun func([]byte, []T) []byte) error {
	w := e.Writer()
	if g, ok := w.(interface{ Grow(int) }); ok && size > 0 {
		g.Grow(size) // a bytes.Buffer grows once rather than by doubling
	}
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	for len(s) > 0 {
		run := s[:min(len(s), encChunk)]
		s = s[len(run):]
		b := appendRun((*bp)[:0], run)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// sliceOf returns the elements of v, a slice of T (or of a named type of
// []T), without copying.
func sliceOf[T any](v reflect.Value) []T {
	return unsafe.Slice((*T)(v.UnsafePointer()), v.Len())
}

type signed interface {
	int | int8 | int16 | int32 | int64
}

type unsigned interface {
	uint | uint16 | uint32 | uint64
}

type float interface {
	float32 | float64
}

// Codes of msgpack's fixed-width numbers.
const (
	codeFloat32 = 0xca
	codeFloat64 = 0xcb
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeNil     = 0xc0
)

// appendFixed appends x (of width bytes) after code, big-endian.
func appendFixed(b []byte, code byte, x uint64, width uintptr) []byte {
	switch width {
	case 1:
		return append(b, code, byte(x))
	case 2:
		return binary.BigEndian.AppendUint16(append(b, code), uint16(x))
	case 4:
		return binary.BigEndian.AppendUint32(append(b, code), uint32(x))
	}
	return binary.BigEndian.AppendUint64(append(b, code), x)
}

func signedCodec[T signed]() *numCodec {
	code := map[uintptr]byte{1: codeInt8, 2: codeInt16, 4: codeInt32, 8: codeInt64}[unsafe.Sizeof(T(0))]
	// The compact loop stays in each codec, where AppendInt inlines.
	compact := func(b []byte, s []T) []byte {
		for _, x := range s {
			b = msgp.AppendInt(b, int64(x))
		}
		return b
	}
	return intCodec(code, compact, decodeSigned[T])
}

func unsignedCodec[T unsigned]() *numCodec {
	code := map[uintptr]byte{2: codeUint16, 4: codeUint32, 8: codeUint64}[unsafe.Sizeof(T(0))]
	compact := func(b []byte, s []T) []byte {
		for _, x := range s {
			b = msgp.AppendUint(b, uint64(x))
		}
		return b
	}
	return intCodec(code, compact, decodeUnsigned[T])
}

// intCodec makes the codec of an integer slice: msgpack writes an int or
// a uint always in the shortest form (compact), the sized types only with
// compact ints, otherwise in the form of their width (code).
func intCodec[T signed | unsigned](code byte, compact func([]byte, []T) []byte, dec func(*msgpack.Decoder, reflect.Value) error) *numCodec {
	width := unsafe.Sizeof(T(0))
	kind := reflect.TypeFor[T]().Kind()
	always := kind == reflect.Int || kind == reflect.Uint
	fixed := func(b []byte, s []T) []byte {
		for _, x := range s {
			b = appendFixed(b, code, uint64(x), width)
		}
		return b
	}
	return &numCodec{
		elem: reflect.TypeFor[T](),
		enc: func(e *msgpack.Encoder, v reflect.Value, flags uint32) error {
			s := sliceOf[T](v)
			if always || flags&flagCompactInts != 0 {
				return writeNums(e, s, 0, compact)
			}
			return writeNums(e, s, len(s)*int(1+width), fixed)
		},
		dec: dec,
	}
}

func floatCodec[T float]() *numCodec {
	single := unsafe.Sizeof(T(0)) == 4
	fixed := func(b []byte, s []T) []byte {
		if single {
			for _, x := range s {
				b = binary.BigEndian.AppendUint32(append(b, codeFloat32), math.Float32bits(float32(x)))
			}
			return b
		}
		// The common case, unrolled by hand: one bounds check per element.
		n := len(b)
		b = b[:n+9*len(s)]
		for i, x := range s {
			p := b[n+9*i : n+9*i+9]
			p[0] = codeFloat64
			binary.BigEndian.PutUint64(p[1:], math.Float64bits(float64(x)))
		}
		return b
	}
	// With compact floats, msgpack writes a float that is a whole number
	// as an int (the same test as its EncodeFloat32/64).
	compact := func(b []byte, s []T) []byte {
		for _, x := range s {
			if T(int64(x)) == x {
				b = msgp.AppendInt(b, int64(x))
			} else if single {
				b = binary.BigEndian.AppendUint32(append(b, codeFloat32), math.Float32bits(float32(x)))
			} else {
				b = binary.BigEndian.AppendUint64(append(b, codeFloat64), math.Float64bits(float64(x)))
			}
		}
		return b
	}
	return &numCodec{
		elem: reflect.TypeFor[T](),
		enc: func(e *msgpack.Encoder, v reflect.Value, flags uint32) error {
			s := sliceOf[T](v)
			if flags&flagCompactFloats != 0 {
				return writeNums(e, s, 0, compact)
			}
			return writeNums(e, s, len(s)*int(1+unsafe.Sizeof(T(0))), fixed)
		},
		dec: decodeFloats[T],
	}
}

// --- decoding ---

// byteSource is a decoder's reader whose bytes can be read in place: a
// bytes.Reader (what every decoder of the module reads from), or a type
// that embeds one. With another reader msgpack decodes the slice.
type byteSource interface {
	io.ReaderAt
	io.Seeker
	Len() int
	Size() int64
}

// numSize is the encoded size of a number (or nil) by its first byte; 0
// for any other kind of value.
var numSize = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c <= 0x7f || c >= 0xe0 || c == codeNil:
			t[c] = 1
		case c == codeUint8 || c == codeInt8:
			t[c] = 2
		case c == codeUint16 || c == codeInt16:
			t[c] = 3
		case c == codeUint32 || c == codeInt32 || c == codeFloat32:
			t[c] = 5
		case c == codeUint64 || c == codeInt64 || c == codeFloat64:
			t[c] = 9
		}
	}
	return t
}()

// intAt decodes the integer (or nil, as 0) at the start of b, whose size
// numSize has checked, as readInt does: big is set, and u holds it, when
// it is over math.MaxInt64.
func intAt(b []byte) (i int64, u uint64, big bool) {
	switch c := b[0]; c {
	case codeNil:
		return 0, 0, false
	case codeUint8:
		i = int64(b[1])
	case codeInt8:
		i = int64(int8(b[1]))
	case codeUint16:
		i = int64(binary.BigEndian.Uint16(b[1:]))
	case codeInt16:
		i = int64(int16(binary.BigEndian.Uint16(b[1:])))
	case codeUint32:
		i = int64(binary.BigEndian.Uint32(b[1:]))
	case codeInt32:
		i = int64(int32(binary.BigEndian.Uint32(b[1:])))
	case codeUint64:
		u = binary.BigEndian.Uint64(b[1:])
		if u > math.MaxInt64 {
			return 0, u, true
		}
		return int64(u), u, false
	case codeInt64:
		i = int64(binary.BigEndian.Uint64(b[1:]))
	default:
		i = int64(int8(c)) // a fixnum
	}
	return i, uint64(i), false
}

func isFloatCode(c byte) bool { return c == codeFloat32 || c == codeFloat64 }

// A parser decodes elements from b into dst until dst is full, b ends
// (k elements decoded from the first p bytes), or an element does not
// fit (err).
type parser[T any] func(dst []T, b []byte, et reflect.Type) (k, p int, err error)

func parseSigned[T signed](dst []T, b []byte, et reflect.Type) (k, p int, err error) {
	for k < len(dst) && p < len(b) {
		c := b[p]
		n := int(numSize[c])
		if n == 0 || isFloatCode(c) {
			return k, p, kindError(c, et)
		}
		if p+n > len(b) {
			break
		}
		i, u, big := intAt(b[p:])
		if big {
			return k, p, rangeError(fmt.Sprintf("number %d", u), et)
		}
		if int64(T(i)) != i {
			return k, p, rangeError(fmt.Sprintf("number %d", i), et)
		}
		dst[k] = T(i)
		k, p = k+1, p+n
	}
	return k, p, nil
}

func parseUnsigned[T unsigned](dst []T, b []byte, et reflect.Type) (k, p int, err error) {
	for k < len(dst) && p < len(b) {
		c := b[p]
		n := int(numSize[c])
		if n == 0 || isFloatCode(c) {
			return k, p, kindError(c, et)
		}
		if p+n > len(b) {
			break
		}
		i, u, big := intAt(b[p:])
		if !big && i < 0 {
			return k, p, rangeError(fmt.Sprintf("number %d", i), et)
		}
		if uint64(T(u)) != u {
			return k, p, rangeError(fmt.Sprintf("number %d", u), et)
		}
		dst[k] = T(u)
		k, p = k+1, p+n
	}
	return k, p, nil
}

func parseFloats[T float](dst []T, b []byte, et reflect.Type) (k, p int, err error) {
	single := unsafe.Sizeof(T(0)) == 4
	for k < len(dst) && p < len(b) {
		// The common case: a run of float64s.
		for !single && k < len(dst) && p+9 <= len(b) && b[p] == codeFloat64 {
			dst[k] = T(math.Float64frombits(binary.BigEndian.Uint64(b[p+1:])))
			k, p = k+1, p+9
		}
		if k == len(dst) || p >= len(b) {
			break
		}
		c := b[p]
		n := int(numSize[c])
		if n == 0 {
			return k, p, kindError(c, et)
		}
		if p+n > len(b) {
			break
		}
		var f float64
		switch c {
		case codeFloat32:
			f = float64(math.Float32frombits(binary.BigEndian.Uint32(b[p+1:])))
		case codeFloat64:
			f = math.Float64frombits(binary.BigEndian.Uint64(b[p+1:]))
		default:
			i, u, big := intAt(b[p:])
			f = float64(i)
			if big {
				f = float64(u) // over math.MaxInt64
			}
		}
		if single && overflowFloat32(f) {
			return k, p, rangeError(fmt.Sprintf("number %g", f), et)
		}
		dst[k] = T(f)
		k, p = k+1, p+n
	}
	return k, p, nil
}

// overflowFloat32 is reflect.Value.OverflowFloat for a float32: the
// infinities and NaN fit.
func overflowFloat32(f float64) bool {
	f = math.Abs(f)
	return math.MaxFloat32 < f && f <= math.MaxFloat64
}

func decodeSigned[T signed](d *msgpack.Decoder, v reflect.Value) error {
	return decodeNums(d, v, parseSigned[T])
}

func decodeUnsigned[T unsigned](d *msgpack.Decoder, v reflect.Value) error {
	return decodeNums(d, v, parseUnsigned[T])
}

func decodeFloats[T float](d *msgpack.Decoder, v reflect.Value) error {
	return decodeNums(d, v, parseFloats[T])
}

// decodeChunk is how much of a reader that is not the module's own is
// copied out at a time.
const decodeChunk = 32 << 10

// decodeNums decodes an array into v, a settable slice of T, as msgpack's
// slice decoder does (nil is a nil slice, an empty array an empty one,
// the slice's storage is reused when it is large enough), with the
// elements parsed in place from the reader's bytes.
func decodeNums[T any](d *msgpack.Decoder, v reflect.Value, parse parser[T]) error {
	src := d.Buffered().(byteSource)
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n == -1 {
		v.SetZero()
		return nil
	}
	if n == 0 && v.IsNil() {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return nil
	}
	// Every element takes a byte at least: a claim of more than the input
	// holds is refused before it allocates (Validate has refused it
	// already when the bytes came through Admit).
	if n > src.Len() {
		return io.ErrUnexpectedEOF
	}
	sp := (*[]T)(v.Addr().UnsafePointer())
	if cap(*sp) >= n {
		*sp = (*sp)[:n]
	} else {
		*sp = make([]T, n)
	}
	s := *sp
	et := v.Type().Elem()
	pos := src.Size() - int64(src.Len())
	var direct []byte
	if db, ok := src.(*decBuf); ok {
		direct = db.data
	}
	var bp *[]byte
	for len(s) > 0 {
		var win []byte
		if direct != nil {
			win = direct[pos:]
		} else {
			if bp == nil {
				bp = scratchPool.Get().(*[]byte)
				defer scratchPool.Put(bp)
			}
			buf := (*bp)[:min(cap(*bp), decodeChunk, int(src.Size()-pos))]
			m, _ := src.ReadAt(buf, pos)
			win = buf[:m]
		}
		k, p, err := parse(s, win, et)
		s, pos = s[k:], pos+int64(p)
		if err == nil && k == 0 {
			err = io.ErrUnexpectedEOF // an element longer than what is left
		}
		if err != nil {
			src.Seek(pos, io.SeekStart)
			return err
		}
	}
	_, err = src.Seek(pos, io.SeekStart)
	return err
}

//go:build linux

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// numSliceTypes are the slice types that take the loops of numslice.go.
var numSliceTypes = []reflect.Type{
	reflect.TypeFor[[]int](), reflect.TypeFor[[]int8](), reflect.TypeFor[[]int16](),
	reflect.TypeFor[[]int32](), reflect.TypeFor[[]int64](),
	reflect.TypeFor[[]uint](), reflect.TypeFor[[]uint16](), reflect.TypeFor[[]uint32](),
	reflect.TypeFor[[]uint64](),
	reflect.TypeFor[[]float32](), reflect.TypeFor[[]float64](),
}

// edgeInts are integers at the borders of msgpack's forms and Go's types.
var edgeInts = []int64{
	0, 1, -1, 31, -32, -33, 127, 128, -128, -129, 255, 256, 32767, -32768, -32769,
	65535, 65536, math.MaxInt32, math.MinInt32, math.MaxInt32 + 1, math.MinInt32 - 1,
	math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MinInt64,
}

var edgeFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.5, -2.25, math.NaN(), math.Inf(1), math.Inf(-1),
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32,
	math.SmallestNonzeroFloat32, 1 << 63, -(1 << 63), 1e300, 127, 128, -33, 4294967296, 1e19,
}

// edgeSlice returns a []T (as a reflect.Value of type t) holding the edge
// values that fit in T, then random ones.
func edgeSlice(t reflect.Type, r *rand.Rand, random int) reflect.Value {
	s := reflect.MakeSlice(t, 0, 0)
	et := t.Elem()
	add := func(x reflect.Value) { s = reflect.Append(s, x) }
	switch et.Kind() {
	case reflect.Float32, reflect.Float64:
		for _, f := range edgeFloats {
			add(reflect.ValueOf(f).Convert(et))
		}
		for _, i := range edgeInts {
			add(reflect.ValueOf(float64(i)).Convert(et))
		}
		for range random {
			add(reflect.ValueOf(r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))).Convert(et))
		}
	default:
		for _, i := range edgeInts {
			v := reflect.New(et).Elem()
			if et.Kind() >= reflect.Uint {
				if i >= 0 && !v.OverflowUint(uint64(i)) {
					v.SetUint(uint64(i))
					add(v)
				}
			} else if !v.OverflowInt(i) {
				v.SetInt(i)
				add(v)
			}
		}
		if et.Kind() == reflect.Uint64 || et.Kind() == reflect.Uint {
			add(reflect.ValueOf(uint64(math.MaxUint64)).Convert(et))
			add(reflect.ValueOf(uint64(1 << 63)).Convert(et))
		}
		for range random {
			x := r.Uint64() >> r.IntN(64)
			add(reflect.ValueOf(x).Convert(et))
		}
	}
	return s
}

// asAny returns the elements of slice s in a []any (nil for nil): msgpack
// encodes each of those by its own per-element path, the reference.
func asAny(s reflect.Value) any {
	if s.IsNil() {
		return []any(nil)
	}
	out := make([]any, s.Len())
	for i := range out {
		out[i] = s.Index(i).Interface()
	}
	return out
}

// encoderSettings are the settings under which the bytes must agree.
var encoderSettings = []struct {
	name           string
	ints, floats   bool
	useWireEncoder bool
}{
	{"plain", false, false, false},
	{"compact-ints", true, false, false},
	{"compact-floats", false, true, false},
	{"compact-both", true, true, false},
	{"wire", true, false, true},
}

func encodeWith(t *testing.T, v any, ints, floats, useWire bool) []byte {
	var buf bytes.Buffer
	if useWire {
		require.NoError(t, AppendTo(&buf, nil, v))
		return buf.Bytes()
	}
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(ints)
	e.UseCompactFloats(floats)
	require.NoError(t, e.Encode(v))
	return buf.Bytes()
}

func TestNumSliceBytesAreMsgpacks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, st := range numSliceTypes {
		for _, es := range encoderSettings {
			for _, s := range []reflect.Value{
				reflect.Zero(st),             // nil
				reflect.MakeSlice(st, 0, 0),  // empty
				edgeSlice(st, r, 20),         // edges
				edgeSlice(st, r, 3*encChunk), // several chunks
			} {
				got := encodeWith(t, s.Interface(), es.ints, es.floats, es.useWireEncoder)
				want := encodeWith(t, asAny(s), es.ints, es.floats, es.useWireEncoder)
				require.Equal(t, want, got, "%s %s len %d", st, es.name, s.Len())
			}
		}
	}
	// Spelled out once, independently of msgpack.
	b, _, err := Marshal([]float64{1.5, math.Inf(-1)})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x92, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}, b)
	b, _, err = Marshal([]int32{1, -1, 200, -200, 70000})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x95, 0x01, 0xff, 0xcc, 200, 0xd1, 0xff, 0x38, 0xce, 0, 1, 0x11, 0x70}, b)
}

type vec []float64   // a named slice type: still the loops
type celsius float64 // a named element type: msgpack's way

type withSlices struct {
	F  []float64
	M  map[string][]int32
	A  any
	P  *[]uint16
	SS [][]int64
	V  vec
	C  []celsius
	N  []float32
}

// withSlicesRef is withSlices with the numbers in []any, as msgpack
// encodes them one by one.
type withSlicesRef struct {
	F  any
	M  map[string]any
	A  any
	P  any
	SS []any
	V  any
	C  []celsius
	N  any
}

func TestNumSlicesInsideValues(t *testing.T) {
	u := []uint16{0, 65535}
	v := withSlices{
		F:  []float64{1, math.NaN(), math.Copysign(0, -1)},
		M:  map[string][]int32{"a": {math.MinInt32, 5}},
		A:  []int64{math.MaxInt64, -1},
		P:  &u,
		SS: [][]int64{nil, {}, {1 << 40}},
		V:  vec{2.5},
		C:  []celsius{-40},
		N:  []float32{},
	}
	ref := withSlicesRef{
		F:  []any{1.0, math.NaN(), math.Copysign(0, -1)},
		M:  map[string]any{"a": []any{int32(math.MinInt32), int32(5)}},
		A:  []any{int64(math.MaxInt64), int64(-1)},
		P:  []any{uint16(0), uint16(65535)},
		SS: []any{[]any(nil), []any{}, []any{int64(1 << 40)}},
		V:  []any{2.5},
		C:  []celsius{-40},
		N:  []any{},
	}
	got, _, err := Marshal(v)
	require.NoError(t, err)
	want, _, err := Marshal(ref)
	require.NoError(t, err)
	require.Equal(t, want, got)

	var out withSlices
	require.NoError(t, Unmarshal(got, nil, &out))
	assert.True(t, math.IsNaN(out.F[1]))
	assert.True(t, math.Signbit(out.F[2]))
	out.F, v.F = nil, nil
	v.A = []any{int64(math.MaxInt64), int64(-1)} // into any: as always
	assert.Equal(t, v, out)
	assert.Nil(t, out.SS[0])
	assert.NotNil(t, out.SS[1])

	// Into any: numbers are int64 and float64, as before.
	var dyn any
	require.NoError(t, Unmarshal(got, nil, &dyn))
	assert.Equal(t, []any{int64(math.MaxInt64), int64(-1)}, dyn.(map[string]any)["A"])

	// A field whose element type does not fit is an error naming it.
	bad, _, err := Marshal(map[string]any{"M": map[string]any{"a": []any{1 << 40}}})
	require.NoError(t, err)
	var de *DecodeError
	require.ErrorAs(t, Unmarshal(bad, nil, &out), &de)
	assert.Equal(t, reflect.TypeFor[int32](), de.Type)
	assert.Equal(t, "number 1099511627776", de.Value)
}

func TestNumSliceNilEmptyReuse(t *testing.T) {
	for _, st := range numSliceTypes {
		p := reflect.New(st)
		p.Elem().Set(reflect.MakeSlice(st, 3, 10))
		require.NoError(t, Unmarshal([]byte{0xc0}, nil, p.Interface()))
		assert.True(t, p.Elem().IsNil(), "%s: nil is a nil slice", st)

		require.NoError(t, Unmarshal([]byte{0x90}, nil, p.Interface()))
		assert.False(t, p.Elem().IsNil(), "%s: an empty array is an empty slice", st)
		assert.Equal(t, 0, p.Elem().Len())

		p.Elem().Set(reflect.MakeSlice(st, 1, 10))
		first := p.Elem().UnsafePointer()
		require.NoError(t, Unmarshal([]byte{0x93, 1, 2, 3}, nil, p.Interface()))
		assert.Equal(t, 3, p.Elem().Len())
		assert.Equal(t, first, p.Elem().UnsafePointer(), "%s: the storage is reused", st)
		assert.Equal(t, int64(3), p.Elem().Index(2).Convert(reflect.TypeFor[int64]()).Int())

		require.NoError(t, Unmarshal([]byte{0x95, 1, 2, 3, 4, 5}, nil, p.Interface()))
		assert.Equal(t, 5, p.Elem().Len())
		assert.Equal(t, first, p.Elem().UnsafePointer())
	}
}

// elementForms are single msgpack values of every kind an element of a
// number array could be sent as: every integer form at its borders, both
// float forms, nil, and values of other kinds.
func elementForms() [][]byte {
	var out [][]byte
	be := binary.BigEndian
	for _, i := range edgeInts {
		u := uint64(i)
		out = append(out,
			[]byte{0xcc, byte(u)}, []byte{0xd0, byte(u)},
			be.AppendUint16([]byte{0xcd}, uint16(u)), be.AppendUint16([]byte{0xd1}, uint16(u)),
			be.AppendUint32([]byte{0xce}, uint32(u)), be.AppendUint32([]byte{0xd2}, uint32(u)),
			be.AppendUint64([]byte{0xcf}, u), be.AppendUint64([]byte{0xd3}, u),
			be.AppendUint64([]byte{0xcf}, -u))
	}
	for c := range 256 {
		if c <= 0x7f || c >= 0xe0 {
			out = append(out, []byte{byte(c)})
		}
	}
	for _, f := range edgeFloats {
		out = append(out,
			be.AppendUint64([]byte{0xcb}, math.Float64bits(f)),
			be.AppendUint32([]byte{0xca}, math.Float32bits(float32(f))))
	}
	out = append(out, []byte{0xc0}, []byte{0xc3}, []byte{0xa1, 'x'}, []byte{0xc4, 0}, []byte{0x90},
		[]byte{0x80}, []byte{0xd4, 1, 0})
	return out
}

// decodeThree decodes data into a new value of slice type st three ways:
// in place from the module's own reader (as Unmarshal), through a
// bytes.Reader (as the pool and the manager), and by msgpack's slice
// decoder with the element rules of decode.go (the reference).
func decodeThree(st reflect.Type, data []byte) (vals [3]reflect.Value, errs [3]error) {
	for i := range 3 {
		var r io.Reader
		if i == 0 {
			r = &decBuf{Reader: bytes.NewReader(data), data: data}
		} else {
			r = bytes.NewReader(data)
		}
		d := msgpack.NewDecoder(r)
		v := reflect.New(st).Elem()
		if i < 2 {
			errs[i] = decodeSliceValue(d, v)
		} else {
			errs[i] = sliceDecoder(d, v)
		}
		if errs[i] == nil {
			if n := r.(interface{ Len() int }).Len(); n != 0 {
				errs[i] = errors.New("trailing bytes")
			}
		}
		vals[i] = v
	}
	return vals, errs
}

// sameNumbers compares slices of numbers bit for bit (NaN, -0).
func sameNumbers(a, b reflect.Value) bool {
	if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
		return false
	}
	for i := range a.Len() {
		x, y := a.Index(i), b.Index(i)
		switch x.Kind() {
		case reflect.Float32, reflect.Float64:
			if math.Float64bits(x.Float()) != math.Float64bits(y.Float()) {
				return false
			}
		case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if x.Uint() != y.Uint() {
				return false
			}
		default:
			if x.Int() != y.Int() {
				return false
			}
		}
	}
	return true
}

// checkDecodeAgrees decodes data into every slice type three ways and
// fails unless all agree with the reference.
func checkDecodeAgrees(t *testing.T, data []byte) {
	for _, st := range numSliceTypes {
		vals, errs := decodeThree(st, data)
		for i := range 2 {
			if errs[2] != nil {
				require.Error(t, errs[i], "%s from % x: reference %v", st, data, errs[2])
				require.Equal(t, errs[2].Error(), errs[i].Error(), "%s from % x", st, data)
				continue
			}
			require.NoError(t, errs[i], "%s from % x", st, data)
			require.True(t, sameNumbers(vals[2], vals[i]), "%s from % x: %v, want %v", st, data, vals[i], vals[2])
		}
	}
}

func TestNumSliceDecodeAgreesWithMsgpack(t *testing.T) {
	good := []byte{0x05}
	for _, f := range elementForms() {
		checkDecodeAgrees(t, append([]byte{0x91}, f...))
		checkDecodeAgrees(t, append(append(append([]byte{0x93}, good...), f...), good...))
	}
	// Long arrays of mixed forms: the bytes.Reader path reads them in
	// chunks, whose borders fall inside elements.
	r := rand.New(rand.NewPCG(3, 4))
	forms := elementForms()
	numeric := forms[:0:0]
	for _, f := range forms {
		if numSize[f[0]] != 0 {
			numeric = append(numeric, f)
		}
	}
	for range 3 {
		data := []byte{0xdd, 0, 0, 0x4e, 0x20} // 20000 elements
		for range 20000 {
			data = append(data, numeric[r.IntN(len(numeric))]...)
		}
		checkDecodeAgrees(t, data)
	}
	// Not arrays.
	for _, data := range [][]byte{{0xc0}, {0x90}, {0x80}, {0xa1, 'x'}, {0x01}, {0xdc, 0, 0}} {
		checkDecodeAgrees(t, data)
	}
}

func TestNumSliceDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		data  []byte
		into  any
		value string
		typ   reflect.Type
	}{
		{[]byte{0x92, 1, 0xcd, 1, 0x2c}, &[]int8{}, "number 300", reflect.TypeFor[int8]()},
		{[]byte{0x91, 0xff}, &[]uint32{}, "number -1", reflect.TypeFor[uint32]()},
		{binary.BigEndian.AppendUint64([]byte{0x91, 0xcf}, math.MaxUint64), &[]int64{}, "number 18446744073709551615", reflect.TypeFor[int64]()},
		{binary.BigEndian.AppendUint64([]byte{0x91, 0xcf}, math.MaxUint64), &[]uint32{}, "number 18446744073709551615", reflect.TypeFor[uint32]()},
		{binary.BigEndian.AppendUint64([]byte{0x91, 0xcb}, math.Float64bits(1e39)), &[]float32{}, "number 1e+39", reflect.TypeFor[float32]()},
		{[]byte{0x91, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, &[]int{}, "a float", reflect.TypeFor[int]()},
		{[]byte{0x92, 1, 0xa1, 'x'}, &[]float64{}, "a string", reflect.TypeFor[float64]()},
	} {
		var de *DecodeError
		require.ErrorAs(t, Unmarshal(c.data, nil, c.into), &de, "% x into %T", c.data, c.into)
		assert.Equal(t, c.value, de.Value)
		assert.Equal(t, c.typ, de.Type)
	}
	// A claim of more elements than the input holds allocates nothing,
	// from any reader (Unmarshal refuses it as malformed before).
	claim := []byte{0xdd, 0x7f, 0xff, 0xff, 0xff, 1, 2}
	for _, st := range numSliceTypes {
		v := reflect.New(st).Elem()
		allocs := testing.AllocsPerRun(1, func() {
			assert.ErrorIs(t, decodeSliceValue(msgpack.NewDecoder(bytes.NewReader(claim)), v), io.ErrUnexpectedEOF)
		})
		assert.Less(t, allocs, 10.0)
		assert.ErrorIs(t, Unmarshal(claim, nil, v.Addr().Interface()), ErrMalformed)
	}
}

// FuzzNumSlices decodes arbitrary bytes into every slice of numbers by
// the loops, in place and through a bytes.Reader, and compares with
// msgpack's own slice decoder; what decodes is encoded again and compared
// with msgpack's encoding.
func FuzzNumSlices(f *testing.F) {
	for _, st := range numSliceTypes {
		b, _, _ := Marshal(edgeSlice(st, rand.New(rand.NewPCG(5, 6)), 3).Interface())
		f.Add(b)
	}
	f.Add([]byte{0x93, 0xc0, 0xcc, 0xff, 0xca, 0x7f, 0x80, 0, 0})
	f.Add([]byte{0xdc, 0, 2, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xcf, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if Validate(data) != nil {
			// Still no panic and no allocation by the claims.
			for _, st := range numSliceTypes {
				_ = decodeSliceValue(msgpack.NewDecoder(bytes.NewReader(data)), reflect.New(st).Elem())
			}
			return
		}
		checkDecodeAgrees(t, data)
		for _, st := range numSliceTypes {
			p := reflect.New(st)
			if Unmarshal(data, nil, p.Interface()) != nil {
				continue
			}
			for _, es := range encoderSettings {
				got := encodeWith(t, p.Elem().Interface(), es.ints, es.floats, es.useWireEncoder)
				want := encodeWith(t, asAny(p.Elem()), es.ints, es.floats, es.useWireEncoder)
				require.Equal(t, want, got)
			}
		}
	})
}

//go:build linux

package msgp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// testExt is an extension whose payload is whatever bytes it holds, so
// that the tests can make every ext form (fixext 1..16, ext 8/16/32).
type testExt struct{ data []byte }

const testExtID = 42

func (e *testExt) MarshalMsgpack() ([]byte, error) { return e.data, nil }
func (e *testExt) UnmarshalMsgpack(b []byte) error {
	e.data = append([]byte(nil), b...)
	return nil
}

func init() { msgpack.RegisterExt(testExtID, (*testExt)(nil)) }

// Boundaries of every integer encoding, and their neighbours.
var (
	uintEdges = []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
		math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}
	intEdges = []int64{0, 1, -1, -31, -32, -33, 0x7f, 0x80, math.MinInt8, math.MinInt8 - 1,
		math.MaxInt16, math.MinInt16, math.MinInt16 - 1, math.MaxUint16, math.MaxUint16 + 1,
		math.MaxInt32, math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MinInt64}
	// Lengths at the edges of the fix, 8, 16 and 32-bit forms of str, bin,
	// ext, array and map.
	lenEdges = []int{0, 1, 2, 4, 8, 15, 16, 17, 31, 32, 255, 256, 65535, 65536}
)

type inner struct {
	A int
	B []string
	C map[string]float64
}

type outer struct {
	X inner
	Y []inner
	Z *inner
	T time.Time
	E *testExt
	P []byte
}

// corpus returns many values of every msgpack type and length form.
func corpus() []any {
	vs := []any{nil, true, false, 0.0, 1.5, -2.25, math.Inf(1), math.NaN(), float32(3.5),
		float32(math.Inf(-1)), "", "héllo", []byte(nil), []byte{}, []any{}, map[string]any{},
		time.Unix(0, 0).UTC(), time.Unix(1<<40, 5).UTC(), time.Unix(1, 0).UTC(),
		[]any{[]any{[]any{}}}, map[string]any{"a": []any{1, "b", map[string]any{"c": nil}}},
		outer{X: inner{A: 1, B: []string{"x"}, C: map[string]float64{"p": 1}},
			Y: []inner{{}, {A: -5}}, T: time.Unix(99, 1).UTC(), E: &testExt{[]byte{1, 2, 3}}, P: []byte("p")},
		map[int]string{1: "a", -70000: "b"}, []int{1, -1, 1 << 40}, []float32{1, 2},
	}
	for _, u := range uintEdges {
		vs = append(vs, u)
	}
	for _, i := range intEdges {
		vs = append(vs, i, int(i), float64(i))
	}
	for _, n := range lenEdges {
		vs = append(vs, strings.Repeat("s", n), bytes.Repeat([]byte{0xc1}, n), &testExt{bytes.Repeat([]byte{0xdd}, n)})
		arr := make([]any, n)
		for i := range arr {
			arr[i] = i
		}
		vs = append(vs, arr)
		m := make(map[string]int, n)
		for i := range n {
			m[fmt.Sprint(i)] = i
		}
		vs = append(vs, m)
	}
	return vs
}

// encodings returns the msgpack encodings of v: the default encoder's and
// the compact-int one's (the module's codec).
func encodings(t testing.TB, v any) [][]byte {
	t.Helper()
	plain, err := msgpack.Marshal(v)
	require.NoError(t, err)
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	require.NoError(t, enc.Encode(v))
	return [][]byte{plain, buf.Bytes()}
}

// prefixes returns the proper prefix lengths of an n-byte value worth
// trying: all of them for a short value, the edges for a long one.
func prefixes(n int) []int {
	if n <= 300 {
		ks := make([]int, n)
		for i := range ks {
			ks[i] = i
		}
		return ks
	}
	ks := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, n / 3, n / 2, n - 2, n - 1}
	return ks
}

func TestLenAgreesWithMsgpack(t *testing.T) {
	for _, v := range corpus() {
		for _, b := range encodings(t, v) {
			name := fmt.Sprintf("%T %.40x", v, b)
			n, err := Len(b)
			require.NoError(t, err, name)
			assert.Equal(t, len(b), n, name)
			// What follows the value is not read.
			n, err = Len(append(append([]byte(nil), b...), 0xc1, 0xdd, 0xff))
			assert.NoError(t, err, name)
			assert.Equal(t, len(b), n, name)
			for _, k := range prefixes(len(b)) {
				n, err := Len(b[:k:k])
				assert.ErrorIs(t, err, ErrShort, "%s cut to %d", name, k)
				assert.Zero(t, n)
			}
		}
	}
}

func TestLenRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":                   {nil, ErrShort},
		"unused code":             {[]byte{0xc1}, ErrInvalid},
		"unused code in an array": {[]byte{0x92, 0x01, 0xc1}, ErrInvalid},
		"unused code as map key":  {[]byte{0x81, 0xc1, 0x01}, ErrInvalid},
		"array32 claiming 4G":     {[]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ErrShort},
		"map32 claiming 4G":       {[]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ErrShort},
		"map16 claiming 2 pairs":  {[]byte{0xde, 0x00, 0x02, 1, 2, 3}, ErrShort},
		"str32 claiming 4G":       {[]byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, ErrShort},
		"bin8 one short":          {[]byte{0xc4, 0x02, 'a'}, ErrShort},
		"truncated int64":         {[]byte{0xd3, 1, 2}, ErrShort},
		"truncated length":        {[]byte{0xda, 0x00}, ErrShort},
		"fixarray short":          {[]byte{0x93, 0x01}, ErrShort},
		"fixarray short by one":   {[]byte{0x93, 0x01, 0x02}, ErrShort},
		"ext8 claiming past":      {[]byte{0xc7, 0x10, 0x01}, ErrShort},
		"ext8 without its type":   {[]byte{0xc7, 0x00}, ErrShort},
		"fixext16 short":          {append([]byte{0xd8, 0x01}, make([]byte, 15)...), ErrShort},
		// An outer array's count is checked against what its inner one
		// leaves: three values need three bytes.
		"outer count past inner":  {[]byte{0x92, 0x92, 0x01, 0x02}, ErrShort},
		"count against the bytes": {[]byte{0x93, 0x91, 0x91, 0x01}, ErrShort},
	} {
		n, err := Len(tc.b)
		assert.ErrorIs(t, err, tc.want, name)
		assert.Zero(t, n, name)
	}
}

func nested(depth int, inner byte) []byte {
	b := bytes.Repeat([]byte{0x91}, depth)
	return append(b, inner)
}

func TestDepth(t *testing.T) {
	n, err := Len(nested(MaxDepth, 0x01))
	require.NoError(t, err)
	assert.Equal(t, MaxDepth+1, n)
	n, err = Len(nested(MaxDepth+1, 0x01))
	assert.ErrorIs(t, err, ErrDepth)
	assert.Zero(t, n)
	// Maps count as levels too.
	deepMap := append(bytes.Repeat([]byte{0x81, 0x01}, MaxDepth+1), 0x01)
	_, err = Len(deepMap)
	assert.ErrorIs(t, err, ErrDepth)
	// An empty container has no inside: it adds no level.
	n, err = Len(nested(MaxDepth, 0x90))
	require.NoError(t, err)
	assert.Equal(t, MaxDepth+1, n)
	// Deep but within the limit, then wide: the levels are all closed.
	b := append([]byte{0x92}, nested(MaxDepth-1, 0x01)...)
	b = append(b, nested(MaxDepth-1, 0x02)...)
	n, err = Len(b)
	require.NoError(t, err)
	assert.Equal(t, len(b), n)
	// msgpack decodes what the limit allows.
	var v any
	require.NoError(t, msgpack.Unmarshal(nested(MaxDepth, 0x01), &v))
}

func TestWalkVisitor(t *testing.T) {
	type ext struct {
		typ  int8
		data []byte
	}
	var want []ext
	var value []any
	for _, n := range lenEdges {
		data := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, ext{testExtID, data})
		value = append(value, map[string]any{"e": &testExt{data}})
	}
	tm := time.Unix(1<<40, 7).UTC()
	value = append(value, []any{tm})
	b, err := msgpack.Marshal(value)
	require.NoError(t, err)

	var got []ext
	var maps []int
	n, err := Walk(b, &Visitor{
		Ext: func(typ int8, data []byte) error {
			got = append(got, ext{typ, bytes.Clone(data)})
			return nil
		},
		Map: func(pairs int) error { maps = append(maps, pairs); return nil },
	})
	require.NoError(t, err)
	assert.Equal(t, len(b), n)
	require.Len(t, got, len(lenEdges)+1)
	assert.Equal(t, want, got[:len(lenEdges)])
	assert.Equal(t, int8(-1), got[len(lenEdges)].typ, "time.Time is msgpack's ext -1")
	assert.Len(t, maps, len(lenEdges))
	for _, p := range maps {
		assert.Equal(t, 1, p)
	}

	// A hook's error stops the walk and comes back as it is.
	stop := errors.New("stop")
	calls := 0
	n, err = Walk(b, &Visitor{Ext: func(int8, []byte) error { calls++; return stop }})
	assert.Same(t, stop, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, calls)
	calls = 0
	n, err = Walk(b, &Visitor{Map: func(int) error { calls++; return stop }})
	assert.Same(t, stop, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, calls)

	// Map sees every map, with its own pair count, in order.
	b, err = msgpack.Marshal([]any{map[string]any{}, map[string]any{"a": map[string]int{"x": 1, "y": 2}, "b": nil}})
	require.NoError(t, err)
	maps = nil
	_, err = Walk(b, &Visitor{Map: func(pairs int) error { maps = append(maps, pairs); return nil }})
	require.NoError(t, err)
	assert.Equal(t, []int{0, 2, 2}, maps)

	// A nil Visitor and an empty one walk as Len does.
	for _, v := range []*Visitor{nil, {}} {
		n, err := Walk(b, v)
		require.NoError(t, err)
		assert.Equal(t, len(b), n)
	}
}

func TestNextType(t *testing.T) {
	assert.Equal(t, InvalidType, NextType(nil))
	for c := range 256 {
		b := byte(c)
		var want Type
		switch {
		case msgpcode.IsFixedNum(b) && b <= msgpcode.PosFixedNumHigh:
			want = UintType
		case msgpcode.IsFixedNum(b):
			want = IntType
		case msgpcode.IsFixedMap(b), b == msgpcode.Map16, b == msgpcode.Map32:
			want = MapType
		case msgpcode.IsFixedArray(b), b == msgpcode.Array16, b == msgpcode.Array32:
			want = ArrayType
		case msgpcode.IsString(b):
			want = StrType
		case msgpcode.IsBin(b):
			want = BinType
		case msgpcode.IsExt(b), msgpcode.IsFixedExt(b):
			want = ExtType
		case b == msgpcode.Nil:
			want = NilType
		case b == msgpcode.False, b == msgpcode.True:
			want = BoolType
		case b == msgpcode.Float:
			want = Float32Type
		case b == msgpcode.Double:
			want = Float64Type
		case b >= msgpcode.Uint8 && b <= msgpcode.Uint64:
			want = UintType
		case b >= msgpcode.Int8 && b <= msgpcode.Int64:
			want = IntType
		default:
			want = InvalidType
		}
		assert.Equal(t, want, NextType([]byte{b}), "code %#x", b)
		assert.NotContains(t, NextType([]byte{b}).String(), "Type(")
	}
	assert.Equal(t, "Type(200)", Type(200).String())
}

// encode returns what the msgpack encoder writes with compact ints.
func encode(t testing.TB, f func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	require.NoError(t, f(enc))
	return buf.Bytes()
}

func TestAppendMatchesEncoder(t *testing.T) {
	prefix := []byte{0xee} // appends go after what is there
	check := func(got []byte, want []byte, what string) {
		t.Helper()
		require.Equal(t, prefix, got[:1], what)
		assert.Equal(t, want, got[1:], what)
	}
	var ints []int64
	for _, i := range intEdges {
		ints = append(ints, i, i-1, i+1)
	}
	for _, i := range ints {
		check(AppendInt(prefix, i), encode(t, func(e *msgpack.Encoder) error { return e.EncodeInt(i) }), fmt.Sprint("int ", i))
		check(AppendInt(prefix, i), encode(t, func(e *msgpack.Encoder) error { return e.Encode(i) }), fmt.Sprint("Encode int64 ", i))
	}
	for _, u := range uintEdges {
		for _, u := range []uint64{u - 1, u, u + 1} {
			check(AppendUint(prefix, u), encode(t, func(e *msgpack.Encoder) error { return e.EncodeUint(u) }), fmt.Sprint("uint ", u))
		}
	}
	for _, f := range []float64{0, -0.5, 1e300, math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64} {
		check(AppendFloat64(prefix, f), encode(t, func(e *msgpack.Encoder) error { return e.EncodeFloat64(f) }), fmt.Sprint("float64 ", f))
		f32 := float32(f)
		check(AppendFloat32(prefix, f32), encode(t, func(e *msgpack.Encoder) error { return e.EncodeFloat32(f32) }), fmt.Sprint("float32 ", f32))
	}
	for _, n := range append(lenEdges, 1<<16+1, 1<<20) {
		s := strings.Repeat("x", n)
		check(AppendString(prefix, s), encode(t, func(e *msgpack.Encoder) error { return e.EncodeString(s) }), fmt.Sprint("str ", n))
		bin := []byte(s)
		check(AppendBin(prefix, bin), encode(t, func(e *msgpack.Encoder) error { return e.EncodeBytes(bin) }), fmt.Sprint("bin ", n))
		check(AppendArrayHeader(prefix, n), encode(t, func(e *msgpack.Encoder) error { return e.EncodeArrayLen(n) }), fmt.Sprint("array ", n))
		check(AppendMapHeader(prefix, n), encode(t, func(e *msgpack.Encoder) error { return e.EncodeMapLen(n) }), fmt.Sprint("map ", n))
	}
	check(AppendBin(prefix, nil), encode(t, func(e *msgpack.Encoder) error { return e.EncodeBytes(nil) }), "nil bin")
	check(AppendNil(prefix), encode(t, func(e *msgpack.Encoder) error { return e.EncodeNil() }), "nil")
	for _, v := range []bool{false, true} {
		check(AppendBool(prefix, v), encode(t, func(e *msgpack.Encoder) error { return e.EncodeBool(v) }), fmt.Sprint(v))
	}
}

// intForms returns every encoding of i: the compact one and each fixed
// width that holds it, signed and unsigned.
func intForms(t testing.TB, i int64) [][]byte {
	forms := [][]byte{AppendInt(nil, i)}
	add := func(f func(e *msgpack.Encoder) error) { forms = append(forms, encode(t, f)) }
	if i == int64(int8(i)) {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt8(int8(i)) })
	}
	if i == int64(int16(i)) {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt16(int16(i)) })
	}
	if i == int64(int32(i)) {
		add(func(e *msgpack.Encoder) error { return e.EncodeInt32(int32(i)) })
	}
	add(func(e *msgpack.Encoder) error { return e.EncodeInt64(i) })
	if i >= 0 {
		forms = append(forms, uintForms(t, uint64(i))...)
	}
	return forms
}

func uintForms(t testing.TB, u uint64) [][]byte {
	forms := [][]byte{AppendUint(nil, u)}
	add := func(f func(e *msgpack.Encoder) error) { forms = append(forms, encode(t, f)) }
	if u <= math.MaxUint8 {
		add(func(e *msgpack.Encoder) error { return e.EncodeUint8(uint8(u)) })
	}
	if u <= math.MaxUint16 {
		add(func(e *msgpack.Encoder) error { return e.EncodeUint16(uint16(u)) })
	}
	if u <= math.MaxUint32 {
		add(func(e *msgpack.Encoder) error { return e.EncodeUint32(uint32(u)) })
	}
	add(func(e *msgpack.Encoder) error { return e.EncodeUint64(u) })
	return forms
}

func TestReadIntegers(t *testing.T) {
	tail := []byte{0xc1, 0xff} // not read
	for _, i := range intEdges {
		for _, b := range intForms(t, i) {
			v, n, err := ReadInt(append(b, tail...))
			require.NoError(t, err, "%x", b)
			assert.Equal(t, i, v, "%x", b)
			assert.Equal(t, len(b), n, "%x", b)
			u, n, err := ReadUint(append(b, tail...))
			if i < 0 {
				assert.ErrorIs(t, err, ErrRange, "%x", b)
				assert.Zero(t, n)
			} else {
				require.NoError(t, err, "%x", b)
				assert.Equal(t, uint64(i), u)
				assert.Equal(t, len(b), n)
			}
			for _, k := range prefixes(len(b)) {
				_, n, err := ReadInt(b[:k:k])
				assert.ErrorIs(t, err, ErrShort, "%x cut to %d", b, k)
				assert.Zero(t, n)
				_, _, err = ReadUint(b[:k:k])
				assert.ErrorIs(t, err, ErrShort, "%x cut to %d", b, k)
			}
		}
	}
	for _, u := range uintEdges {
		for _, b := range uintForms(t, u) {
			v, n, err := ReadUint(b)
			require.NoError(t, err)
			assert.Equal(t, u, v)
			assert.Equal(t, len(b), n)
			i, n, err := ReadInt(b)
			if u > math.MaxInt64 {
				assert.ErrorIs(t, err, ErrRange, "%x", b)
				assert.Zero(t, n)
			} else {
				require.NoError(t, err)
				assert.Equal(t, int64(u), i)
			}
		}
	}
}

func TestReadScalars(t *testing.T) {
	for _, f := range []float64{0, -0.5, 1e300, math.Inf(1)} {
		b := AppendFloat64(nil, f)
		v, n, err := ReadFloat(b)
		require.NoError(t, err)
		assert.Equal(t, f, v)
		assert.Equal(t, 9, n)
		b = AppendFloat32(nil, float32(f))
		v, n, err = ReadFloat(b)
		require.NoError(t, err)
		assert.Equal(t, float64(float32(f)), v)
		assert.Equal(t, 5, n)
	}
	v, _, err := ReadFloat(AppendFloat64(nil, math.NaN()))
	require.NoError(t, err)
	assert.True(t, math.IsNaN(v))
	for _, want := range []bool{false, true} {
		v, n, err := ReadBool(AppendBool(nil, want))
		require.NoError(t, err)
		assert.Equal(t, want, v)
		assert.Equal(t, 1, n)
	}
	for _, l := range append(lenEdges, 1<<16+1) {
		s := strings.Repeat("q", l)
		for _, b := range [][]byte{AppendString(nil, s), encode(t, func(e *msgpack.Encoder) error { return e.EncodeString(s) })} {
			got, n, err := ReadString(append(b, 0xc1))
			require.NoError(t, err)
			assert.Equal(t, s, got)
			assert.Equal(t, len(b), n)
			raw, n, err := ReadBytes(b)
			require.NoError(t, err)
			assert.Equal(t, []byte(s), raw)
			assert.NotNil(t, raw, "an empty str is not nil")
			assert.Equal(t, len(b), n)
		}
		bin := AppendBin(nil, []byte(s))
		raw, n, err := ReadBytes(bin)
		require.NoError(t, err)
		assert.Equal(t, []byte(s), raw)
		assert.NotNil(t, raw, "an empty bin is not nil")
		assert.Equal(t, len(bin), n)
		_, _, err = ReadString(bin)
		assert.ErrorIs(t, err, ErrType, "a bin is not a str")
		for _, k := range prefixes(len(bin)) {
			_, n, err := ReadBytes(bin[:k:k])
			assert.ErrorIs(t, err, ErrShort, "bin %d cut to %d", l, k)
			assert.Zero(t, n)
		}
	}
	raw, n, err := ReadBytes([]byte{0xc0})
	require.NoError(t, err)
	assert.Nil(t, raw)
	assert.Equal(t, 1, n)

	// The bytes alias b, and appending to them does not write over what
	// follows.
	b := append(AppendBin(nil, []byte("ab")), 0x07)
	raw, _, err = ReadBytes(b)
	require.NoError(t, err)
	assert.Equal(t, &b[2], &raw[0])
	_ = append(raw, 'z')
	assert.Equal(t, byte(0x07), b[4])
}

func TestReadHeaders(t *testing.T) {
	for _, l := range append(lenEdges, math.MaxUint32) {
		for _, h := range []struct {
			b    []byte
			read func([]byte) (int, int, error)
		}{{AppendArrayHeader(nil, l), ReadArrayHeader}, {AppendMapHeader(nil, l), ReadMapHeader}} {
			// The count is the header's claim: the elements need not be
			// there (Len is what checks them).
			n, size, err := h.read(append(h.b, 0xc1))
			require.NoError(t, err)
			assert.Equal(t, l, n)
			assert.Equal(t, len(h.b), size)
			for k := range len(h.b) {
				n, size, err := h.read(h.b[:k:k])
				assert.ErrorIs(t, err, ErrShort, "header of %d cut to %d", l, k)
				assert.Zero(t, n)
				assert.Zero(t, size)
			}
		}
	}
}

func TestReadWrongType(t *testing.T) {
	values := map[Type][]byte{
		NilType:     {0xc0},
		BoolType:    {0xc3},
		IntType:     {0xd0, 0x80},
		UintType:    {0xcc, 0x80},
		Float32Type: AppendFloat32(nil, 1),
		Float64Type: AppendFloat64(nil, 1),
		StrType:     AppendString(nil, "s"),
		BinType:     AppendBin(nil, []byte("s")),
		ArrayType:   {0x90},
		MapType:     {0x80},
		ExtType:     {0xd4, 0x01, 0x00},
		InvalidType: {0xc1},
	}
	readers := map[string]struct {
		read  func([]byte) (int, error)
		takes []Type
	}{
		"ReadBool":        {func(b []byte) (int, error) { _, n, err := ReadBool(b); return n, err }, []Type{BoolType}},
		"ReadInt":         {func(b []byte) (int, error) { _, n, err := ReadInt(b); return n, err }, []Type{IntType, UintType}},
		"ReadUint":        {func(b []byte) (int, error) { _, n, err := ReadUint(b); return n, err }, []Type{UintType}},
		"ReadFloat":       {func(b []byte) (int, error) { _, n, err := ReadFloat(b); return n, err }, []Type{Float32Type, Float64Type}},
		"ReadString":      {func(b []byte) (int, error) { _, n, err := ReadString(b); return n, err }, []Type{StrType}},
		"ReadBytes":       {func(b []byte) (int, error) { _, n, err := ReadBytes(b); return n, err }, []Type{StrType, BinType, NilType}},
		"ReadArrayHeader": {func(b []byte) (int, error) { _, n, err := ReadArrayHeader(b); return n, err }, []Type{ArrayType}},
		"ReadMapHeader":   {func(b []byte) (int, error) { _, n, err := ReadMapHeader(b); return n, err }, []Type{MapType}},
	}
	for name, r := range readers {
		for typ, b := range values {
			n, err := r.read(b)
			if typ == IntType && name == "ReadUint" {
				assert.ErrorIs(t, err, ErrRange, "%s on %s", name, typ) // -128
				continue
			}
			want := false
			for _, tt := range r.takes {
				want = want || tt == typ
			}
			if want {
				assert.NoError(t, err, "%s on %s", name, typ)
				assert.Equal(t, len(b), n, "%s on %s", name, typ)
			} else {
				assert.ErrorIs(t, err, ErrType, "%s on %s", name, typ)
				assert.Contains(t, err.Error(), typ.String())
				assert.Zero(t, n)
			}
		}
		n, err := r.read(nil)
		assert.ErrorIs(t, err, ErrShort, "%s on nothing", name)
		assert.Zero(t, n)
	}
}

// Every reader takes exactly the bytes Len says the value has.
func TestReadersAgreeWithLen(t *testing.T) {
	for _, v := range corpus() {
		for _, b := range encodings(t, v) {
			want, err := Len(b)
			require.NoError(t, err)
			for _, read := range []func([]byte) (int, error){
				func(b []byte) (int, error) { _, n, err := ReadBool(b); return n, err },
				func(b []byte) (int, error) { _, n, err := ReadInt(b); return n, err },
				func(b []byte) (int, error) { _, n, err := ReadUint(b); return n, err },
				func(b []byte) (int, error) { _, n, err := ReadFloat(b); return n, err },
				func(b []byte) (int, error) { _, n, err := ReadString(b); return n, err },
				func(b []byte) (int, error) { _, n, err := ReadBytes(b); return n, err },
			} {
				if n, err := read(b); err == nil {
					assert.Equal(t, want, n, "%T %.40x", v, b)
				}
			}
		}
	}
}

func BenchmarkLen(b *testing.B) {
	v, err := msgpack.Marshal(map[string]any{"a": []any{1, 2, "three", 4.5}, "b": map[string]int{"x": 1, "y": 2}, "c": "some string"})
	require.NoError(b, err)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := Len(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLenScalar(b *testing.B) {
	v := AppendString(nil, "hello")
	for b.Loop() {
		if _, err := Len(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadInt(b *testing.B) {
	var buf []byte
	for i := range 1000 {
		buf = AppendInt(buf, int64(i*37-5000))
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		for p := 0; p < len(buf); {
			_, n, err := ReadInt(buf[p:])
			if err != nil {
				b.Fatal(err)
			}
			p += n
		}
	}
}

//go:build linux

package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func decodeAs[T any](t *testing.T, sent any) (T, error) {
	t.Helper()
	b, _, err := Marshal(sent)
	require.NoError(t, err)
	var got T
	err = Unmarshal(b, nil, &got)
	return got, err
}

// Integers and floats decoded into interfaces are int64 (uint64 above
// MaxInt64) and float64 at any depth, whatever width was sent, also
// through a plain msgpack decoder (the pool's and the manager's use the
// same rules). If this fails after a msgpack upgrade, the decoder table
// in decode.go has moved.
func TestDecodeRulesInstalled(t *testing.T) {
	sent := []any{int8(1), uint16(300), int32(-5), uint64(math.MaxUint64), float32(1.5), 2.5,
		map[string]any{"n": 7, "l": []any{uint8(9)}}, map[int]string{1: "a"}, []byte("b"), "s", nil, true}
	want := []any{int64(1), int64(300), int64(-5), uint64(math.MaxUint64), 1.5, 2.5,
		map[string]any{"n": int64(7), "l": []any{int64(9)}}, map[any]any{int64(1): "a"}, []byte("b"), "s", nil, true}
	got, err := decodeAs[any](t, sent)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	type withAny struct {
		X any
		M map[int]any
		A [1]any
	}
	w, err := decodeAs[withAny](t, withAny{X: int16(1000), M: map[int]any{1: int8(2)}, A: [1]any{uint32(3)}})
	require.NoError(t, err)
	assert.Equal(t, withAny{X: int64(1000), M: map[int]any{1: int64(2)}, A: [1]any{int64(3)}}, w)
	m, err := decodeAs[map[string]any](t, map[string]any{"a": int8(1)})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"a": int64(1)}, m)

	b, err := msgpack.Marshal(withAny{X: uint8(1)})
	require.NoError(t, err)
	var direct withAny
	require.NoError(t, msgpack.Unmarshal(b, &direct))
	assert.Equal(t, int64(1), direct.X)

	// An interface holding a pointer is decoded through it.
	var n int16
	var into any = &n
	b, _, _ = Marshal(12)
	require.NoError(t, Unmarshal(b, nil, &into))
	assert.Equal(t, int16(12), n)
}

type level int8

type narrow struct {
	L level
	U []uint16
	M map[string]int32
}

// An integer that does not fit is an error, as encoding/json reports it,
// whatever the path to it.
func TestDecodeNarrowingRefused(t *testing.T) {
	cases := []struct {
		sent any
		into any
		msg  string
	}{
		{100000, new(int8), "cannot decode number 100000 into Go value of type int8"},
		{-1, new(uint), "cannot decode number -1 into Go value of type uint"},
		{300, new(uint8), "cannot decode number 300 into Go value of type uint8"},
		{uint64(math.MaxUint64), new(int64), "cannot decode number 18446744073709551615 into Go value of type int64"},
		{1e40, new(float32), "cannot decode number 1e+40 into Go value of type float32"},
		{map[string]any{"L": 200}, new(narrow), "cannot decode number 200 into Go value of type wire.level"},
		{map[string]any{"U": []int{1, -2}}, new(narrow), "cannot decode number -2 into Go value of type uint16"},
		{map[string]any{"M": map[string]int64{"a": 1 << 40}}, new(narrow), "cannot decode number 1099511627776 into Go value of type int32"},
		{"x", new(int), "cannot decode a string into Go value of type int"},
		{1.5, new(int), "cannot decode a float into Go value of type int"},
		{1, new(string), "cannot decode an integer into Go value of type string"},
		{"x", new(bool), "cannot decode a string into Go value of type bool"},
	}
	for _, c := range cases {
		b, _, err := Marshal(c.sent)
		require.NoError(t, err)
		err = Unmarshal(b, nil, c.into)
		var de *DecodeError
		if assert.ErrorAs(t, err, &de, "%v into %T", c.sent, c.into) {
			assert.Contains(t, err.Error(), c.msg)
			assert.Contains(t, err.Error(), "; ", "the message says what to do")
		}
	}
	// What fits still decodes, at the edges.
	i8, err := decodeAs[int8](t, -128)
	require.NoError(t, err)
	assert.Equal(t, int8(-128), i8)
	u64, err := decodeAs[uint64](t, uint64(math.MaxUint64))
	require.NoError(t, err)
	assert.Equal(t, uint64(math.MaxUint64), u64)
	f32, err := decodeAs[float32](t, 3)
	require.NoError(t, err)
	assert.Equal(t, float32(3), f32)
}

type t1 struct {
	A int
	B string
}

type t2 struct{ X int }

type t3 struct {
	A int
	Z string
}

type base struct{ ID int }

type derived struct {
	base
	Name string `msgpack:"name"`
}

// A struct received into an unrelated struct type (no key names a field)
// is an error; a partial match (a field added or removed) is not.
func TestDecodeStructKeys(t *testing.T) {
	_, err := decodeAs[t2](t, t1{1, "b"})
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	assert.Contains(t, err.Error(), `cannot decode a map with keys "A", "B" into Go value of type wire.t2: no key names a field of it (X)`)

	got, err := decodeAs[t3](t, t1{1, "b"})
	require.NoError(t, err)
	assert.Equal(t, t3{A: 1}, got)

	_, err = decodeAs[[]t2](t, []t1{{1, "b"}})
	assert.ErrorAs(t, err, &de, "inside a slice")
	_, err = decodeAs[map[string]*t2](t, map[string]t1{"k": {1, "b"}})
	assert.ErrorAs(t, err, &de, "inside a map, through a pointer")

	d, err := decodeAs[derived](t, derived{base{7}, "n"})
	require.NoError(t, err, "embedded fields are inlined")
	assert.Equal(t, derived{base{7}, "n"}, d)
	_, err = decodeAs[t2](t, map[string]any{})
	assert.NoError(t, err, "an empty map fills nothing and claims nothing")
	_, err = decodeAs[struct{}](t, t1{})
	assert.NoError(t, err, "a struct without fields takes anything")
}

type job struct {
	name  string
	count int
}

type holder struct {
	Jobs []job
}

// A struct that has fields but none exported is refused when it is sent,
// not delivered as a zero value.
func TestEncodeNoExportedFields(t *testing.T) {
	for _, v := range []any{job{"a", 1}, &job{}, holder{}, []any{1, job{}}, map[string]any{"j": job{}}} {
		_, _, err := Marshal(v)
		require.ErrorIs(t, err, ErrNoExportedFields, "%T", v)
		assert.Contains(t, err.Error(), "type wire.job has no exported fields")
		assert.Contains(t, err.Error(), "export the fields")
	}
	for _, v := range []any{struct{}{}, t1{}, derived{}} {
		_, _, err := Marshal(v)
		assert.NoError(t, err, "%T", v)
	}
}

// A message made of tiny containers is refused before decoding, with the
// budget's error; one of records or numbers of the same size decodes.
func TestDecodeBudget(t *testing.T) {
	const size = 16 << 20
	// An array of 16 Mi - 5 empty maps: 16 MiB of msgpack.
	emptyMaps := make([]byte, size)
	emptyMaps[0] = 0xdd
	n := size - 5
	emptyMaps[1], emptyMaps[2], emptyMaps[3], emptyMaps[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	for i := 5; i < size; i++ {
		emptyMaps[i] = 0x80
	}
	require.NoError(t, Validate(emptyMaps))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v any
	err := Unmarshal(emptyMaps, nil, &v)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrBudget)
	assert.Contains(t, err.Error(), "decode into a typed value")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(size), "refused before decoding")

	// The same kind of message into a typed value that costs little is
	// fine (1 MiB of it: the reflective decoder is slow per element).
	small := emptyMaps[:1<<20]
	m := len(small) - 5
	small[1], small[2], small[3], small[4] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
	var typed []struct{}
	require.NoError(t, Unmarshal(small, nil, &typed))
	assert.Len(t, typed, m)

	// A message of numbers into any is within the budget.
	nums := make([]int, 1<<20)
	for i := range nums {
		nums[i] = i
	}
	b, _, err := Marshal(nums)
	require.NoError(t, err)
	require.NoError(t, Unmarshal(b, nil, &v))
	assert.Len(t, v, len(nums))
}

// The estimate is an upper bound: decoding a message into any allocates
// no more than Check estimates, for the shapes that cost the most per byte.
func TestDecodeCostBound(t *testing.T) {
	shapes := map[string]any{
		"empty maps":      repeat(map[string]any{}, 20000),
		"one-pair maps":   repeat(map[string]any{"": 0}, 20000),
		"nine-pair maps":  repeat(map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9}, 5000),
		"empty arrays":    repeat([]any{}, 50000),
		"one-item arrays": repeat([]any{1}, 50000),
		"negative ints":   repeat(-1, 100000),
		"floats":          repeat(1.5, 100000),
		"short strings":   repeat("ab", 100000),
		"empty strings":   repeat("", 100000),
		"binary":          repeat([]byte{1}, 100000),
		"nested":          repeat(map[string]any{"k": []any{map[string]any{"x": -7}}}, 10000),
		"records":         repeat(map[string]any{"id": 12345, "name": "alice", "score": 0.5, "tags": []any{"a", "b"}}, 5000),
	}
	// What the budget must let through at any size.
	common := map[string]bool{"nine-pair maps": true, "records": true, "negative ints": true, "floats": true,
		"short strings": true, "empty strings": true, "binary": true, "empty arrays": true, "one-item arrays": true}
	for name, v := range shapes {
		b, _, err := Marshal(v)
		require.NoError(t, err)
		c := checker{b: b}
		_, err = c.value(0, reflect.TypeFor[any](), 0)
		require.NoError(t, err)
		var before, after runtime.MemStats
		var out any
		runtime.GC()
		runtime.ReadMemStats(&before)
		require.NoError(t, Unmarshal(b, nil, &out))
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		// The decoder's own buffers are a few KiB beside the value. The
		// race detector's allocator gives small objects more room.
		bound := c.cost + 16<<10
		if testbin.RaceEnabled {
			bound *= 1.5
		}
		assert.LessOrEqual(t, float64(got), bound, "%s: %d bytes of message: allocated %d, estimated %.0f", name, len(b), got, c.cost)
		if common[name] {
			assert.Less(t, c.cost/float64(len(b)), float64(BudgetPerByte), "%s: refused when large", name)
		}
		t.Logf("%-16s %8d bytes: allocated %9d (%5.1f/byte), estimated %9.0f (%5.1f/byte)", name, len(b), got, float64(got)/float64(len(b)), c.cost, c.cost/float64(len(b)))
	}
}

func repeat(v any, n int) []any {
	s := make([]any, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// Errors from msgpack itself name what was sent and the Go type.
func TestDecodeErrorWording(t *testing.T) {
	b, _, _ := Marshal(map[string]int{"a": 1})
	var s []int
	err := Unmarshal(b, nil, &s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a map")
	assert.Contains(t, err.Error(), "[]int")
	assert.False(t, errors.Is(err, ErrMalformed))
}

// extFn has no exported fields but travels as a msgpack extension
// registered with a function, outside this package: it is not refused.
type extFn struct{ v int }

func TestEncodeExtensionWithoutExportedFields(t *testing.T) {
	msgpack.RegisterExtEncoder(42, (*extFn)(nil), func(e *msgpack.Encoder, v reflect.Value) ([]byte, error) {
		return []byte{byte(v.Interface().(*extFn).v)}, nil
	})
	defer msgpack.UnregisterExt(42)
	_, _, err := Marshal(&extFn{3})
	assert.NoError(t, err)
}

// TestDecodeBigUintIntoFloat: a uint64 over math.MaxInt64 decoded into a
// float keeps its value (msgpack's own decoder reads it as an int64 and
// gives a negative number), alone and in a slice.
func TestDecodeBigUintIntoFloat(t *testing.T) {
	b, err := msgpack.Marshal(uint64(math.MaxUint64))
	require.NoError(t, err)
	var f float64
	require.NoError(t, Unmarshal(b, nil, &f))
	assert.Equal(t, float64(math.MaxUint64), f)
	var g float32
	require.NoError(t, Unmarshal(b, nil, &g))
	assert.Equal(t, float32(math.MaxUint64), g)

	b, err = msgpack.Marshal([]uint64{math.MaxUint64, 1 << 63, 7})
	require.NoError(t, err)
	var fs []float64
	require.NoError(t, Unmarshal(b, nil, &fs))
	assert.Equal(t, []float64{math.MaxUint64, 1 << 63, 7}, fs)
	var gs []float32
	require.NoError(t, Unmarshal(b, nil, &gs))
	assert.Equal(t, []float32{math.MaxUint64, 1 << 63, 7}, gs)
}

// TestScalarFastPath: Unmarshal decodes a lone int, int64, float64, string
// or bool without a msgpack.Decoder; the result and every error must be
// what the general path gives.
func TestScalarFastPath(t *testing.T) {
	values := []any{0, -1, 127, 128, -33, math.MaxInt64, math.MinInt64, uint64(math.MaxUint64),
		int8(-5), uint16(65535), 1.5, float32(2.5), math.Inf(-1), "", "héllo", true, false, nil,
		[]byte("b"), []int{1}, map[string]int{"a": 1}}
	for _, sent := range values {
		data, err := msgpack.Marshal(sent)
		require.NoError(t, err)
		for _, trailing := range [][]byte{nil, {0xc0}} {
			data := append(data[:len(data):len(data)], trailing...)
			for _, newPtr := range []func() any{
				func() any { return new(int) }, func() any { return new(int64) },
				func() any { return new(float64) }, func() any { return new(string) },
				func() any { return new(bool) },
			} {
				fast, slow := newPtr(), newPtr()
				errFast := Unmarshal(data, nil, fast)
				errSlow := unmarshal(data, nil, slow)
				if errSlow != nil {
					require.Error(t, errFast, "%#v into %T", sent, fast)
					require.Equal(t, errSlow.Error(), errFast.Error(), "%#v into %T", sent, fast)
					continue
				}
				require.NoError(t, errFast, "%#v into %T", sent, fast)
				require.Equal(t, slow, fast, "%#v into %T", sent, fast)
			}
		}
	}
}

// TestScalarEncodeFastPath: AppendTo writes a lone int, int64, float64,
// string or bool without a msgpack.Encoder; the bytes must be the general
// path's.
func TestScalarEncodeFastPath(t *testing.T) {
	values := []any{0, -1, -32, -33, 127, 128, 255, 256, 65535, 65536, -128, -129, -32768, -32769,
		math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxInt64, math.MinInt64,
		int64(-7), int64(1 << 40), 0.0, math.Copysign(0, -1), 1.5, math.NaN(), math.Inf(1), math.MaxFloat64,
		"", "a", strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 255),
		strings.Repeat("x", 256), strings.Repeat("x", 65536), true, false}
	for _, v := range values {
		var fast, slow bytes.Buffer
		fast.WriteString("prefix")
		slow.WriteString("prefix")
		require.NoError(t, AppendTo(&fast, nil, v))
		require.NoError(t, appendTo(&slow, nil, v))
		require.Equal(t, slow.Bytes(), fast.Bytes(), "%#v", v)
	}
}

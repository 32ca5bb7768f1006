//go:build linux

package wire

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type inner struct {
	A int8
	B []uint16
	C map[string]float32
}

// quickable holds what testing/quick can generate.
type quickable struct {
	I    int
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	U    uint
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	F32  float32
	F64  float64
	S    string
	B    []byte
	Arr  [3]int64
	Sl   []string
	M    map[string]inner
	MI   map[int64]string
	P    *inner
	PP   **int
	Ins  []inner
	Bool bool
}

type everything struct {
	quickable // inlined by msgpack
	T         time.Time
	Any       any
	Anys      []any
}

// randAny makes a random dynamic value: scalars of every kind, and (above
// the depth limit, scalars only) slices and maps of more.
func randAny(r *rand.Rand, depth int) any {
	n := 9
	if depth > 4 {
		n = 7
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.Int64() - r.Int64()
	case 2:
		return r.Uint64()
	case 3:
		return r.NormFloat64() * 1e10
	case 4:
		return strings.Repeat("é", r.IntN(100))
	case 5:
		return make([]byte, r.IntN(300))
	case 6:
		return r.IntN(2) == 0
	case 7:
		s := make([]any, r.IntN(5))
		for i := range s {
			s[i] = randAny(r, depth+1)
		}
		return s
	default:
		m := map[string]any{}
		for range r.IntN(5) {
			m[string(rune('a'+r.IntN(26)))] = randAny(r, depth+1)
		}
		return m
	}
}

// TestRoundTripProperty: whatever Marshal produces, Validate accepts and
// Unmarshal gives back (Validate runs on every received message, so a
// value it wrongly refused could be sent but never received).
func TestRoundTripProperty(t *testing.T) {
	cfg := &quick.Config{MaxCount: 300}
	check := func(q quickable, seed int64, ns int64) bool {
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		e := everything{quickable: q}
		e.T = time.Unix(ns/1e9, ns%1e9*int64(r.IntN(2))).UTC()
		e.Any = randAny(r, 0)
		e.Anys = []any{randAny(r, 0), randAny(r, 0)}
		b, files, err := Marshal(e)
		if !assert.NoError(t, err) || !assert.Nil(t, files) {
			return false
		}
		if !assert.NoError(t, Validate(b)) {
			return false
		}
		var out everything
		if !assert.NoError(t, Unmarshal(b, nil, &out)) {
			return false
		}
		// msgpack decodes an empty or nil container as nil; compare
		// through a second encoding, which is canonical for equal values
		// except map order, so compare decoded values field by field.
		return assert.True(t, e.T.Equal(out.T), "time") &&
			assert.Equal(t, normalize(e.Any), normalize(out.Any)) &&
			assert.Equal(t, e.U64, out.U64) && assert.Equal(t, e.I64, out.I64) &&
			assert.Equal(t, e.S, out.S) && assert.Equal(t, len(e.B), len(out.B)) &&
			assert.Equal(t, len(e.M), len(out.M)) && assert.Equal(t, e.Arr, out.Arr) &&
			(math.IsNaN(float64(e.F32)) || assert.Equal(t, e.F32, out.F32))
	}
	require.NoError(t, quick.Check(check, cfg))
}

// normalize maps what msgpack gives back for an any to comparable values:
// integers come back as int64 or uint64, empty slices as nil.
func normalize(v any) any {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case int8, int16, int32, uint8, uint16, uint32, int:
		return float64(reflect.ValueOf(v).Convert(reflect.TypeFor[int64]()).Int())
	case float64:
		return v
	case []byte:
		return string(v)
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i := range v {
			out[i] = normalize(v[i])
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

// The size classes at their boundaries: every msgpack length form (8, 16
// and 32 bits for str, bin, array and map; fixext and ext for time), and
// the integer and float extremes.
func TestRoundTripBoundaries(t *testing.T) {
	vals := []any{
		uint64(math.MaxUint64), int64(math.MinInt64), int64(math.MaxInt64), -1, -32, -33, 127, 128, 255, 256,
		65535, 65536, math.MaxUint32, math.MaxUint32 + 1, float32(math.MaxFloat32), float32(math.Copysign(0, -1)),
		math.Inf(1), math.SmallestNonzeroFloat64, float32(1.5),
		time.Unix(0, 0), time.Unix(1<<34-1, 0), time.Unix(1<<34, 1), time.Unix(-1, 5), time.Date(9999, 1, 1, 0, 0, 0, 999999999, time.UTC),
		map[string]any{}, []any{}, "", []byte{},
	}
	for _, n := range []int{31, 32, 255, 256, 65535, 65536, 70000} {
		vals = append(vals, strings.Repeat("x", n), make([]byte, n), make([]any, n), make([]int8, n))
		m := make(map[int]bool, n)
		for i := range n {
			m[i] = true
		}
		vals = append(vals, m)
		if n < 1000 {
			vals = append(vals, make([]any, 15), make([]any, 16))
		}
	}
	for _, v := range vals {
		b, _, err := Marshal(v)
		require.NoError(t, err, "%T", v)
		require.NoError(t, Validate(b), "%T of %d bytes", v, len(b))
		ptr := reflect.New(reflect.TypeOf(v))
		require.NoError(t, Unmarshal(b, nil, ptr.Interface()), "%T", v)
		if tm, ok := v.(time.Time); ok {
			assert.True(t, tm.Equal(ptr.Elem().Interface().(time.Time)), "%v", tm)
		}
	}
}

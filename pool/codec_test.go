//go:build linux

package pool

import (
	"math"
	"testing"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forms returns every msgpack encoding of the integer i that the reader
// must accept (fixint, int 8..64 and uint 8..64 where they hold it).
func forms(i int64) [][]byte {
	out := [][]byte{msgp.AppendInt(nil, i)}
	if i >= 0 {
		out = append(out, msgp.AppendUint(nil, uint64(i)), append([]byte{0xcf}, be64(uint64(i))...))
	}
	return append(out, append([]byte{0xd3}, be64(uint64(i))...))
}

func be64(u uint64) []byte {
	b := make([]byte, 8)
	for k := range b {
		b[k] = byte(u >> (56 - 8*k))
	}
	return b
}

func decodeOne[T any](b []byte) (T, error) {
	var v T
	var d decState
	d.reset(b)
	err := newCodec[T]().dec(&d, &v)
	if err == nil && d.p != len(b) {
		panic("not all read")
	}
	return v, err
}

// checkInt decodes every form of i into T and wants i back, or an error
// matching msgp.ErrRange when T cannot hold it: never a narrowed value.
func checkInt[T int | int64 | int32 | int16 | int8 | uint | uint64 | uint32 | uint16 | uint8](t *testing.T, i int64, fits bool) {
	t.Helper()
	for _, b := range forms(i) {
		v, err := decodeOne[T](b)
		if fits {
			require.NoError(t, err, "%d into %T", i, v)
			assert.Equal(t, i, int64(v))
		} else {
			require.ErrorIs(t, err, msgp.ErrRange, "%d into %T gave %d", i, v, v)
			assert.Contains(t, err.Error(), "cannot decode number")
		}
	}
}

func TestCodecIntegersNeverNarrow(t *testing.T) {
	checkInt[int8](t, 127, true)
	checkInt[int8](t, -128, true)
	checkInt[int8](t, 128, false)
	checkInt[int8](t, 100000, false)
	checkInt[int16](t, -32769, false)
	checkInt[int32](t, math.MaxInt32+1, false)
	checkInt[int32](t, math.MinInt32, true)
	checkInt[int](t, math.MinInt64, true)
	checkInt[int64](t, math.MaxInt64, true)
	checkInt[uint8](t, 255, true)
	checkInt[uint8](t, 256, false)
	checkInt[uint8](t, -1, false)
	checkInt[uint](t, -1, false)
	checkInt[uint64](t, -1, false)
	checkInt[uint16](t, 65536, false)
	checkInt[uint32](t, math.MaxUint32, true)
	checkInt[uint32](t, math.MaxUint32+1, false)

	// Above math.MaxInt64: only a uint64 holds it.
	big := msgp.AppendUint(nil, math.MaxUint64)
	u, err := decodeOne[uint64](big)
	require.NoError(t, err)
	assert.Equal(t, uint64(math.MaxUint64), u)
	_, err = decodeOne[int64](big)
	require.ErrorIs(t, err, msgp.ErrRange)
	f, err := decodeOne[float64](big)
	require.NoError(t, err)
	assert.Equal(t, float64(math.MaxUint64), f)

	// nil is 0, as the module's other decoders read it.
	n, err := decodeOne[int](msgp.AppendNil(nil))
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestCodecFloats(t *testing.T) {
	f, err := decodeOne[float32](msgp.AppendFloat64(nil, 1e39))
	require.ErrorIs(t, err, msgp.ErrRange, "1e39 into float32 gave %v", f)
	f, err = decodeOne[float32](msgp.AppendFloat64(nil, math.Inf(-1)))
	require.NoError(t, err)
	assert.True(t, math.IsInf(float64(f), -1))
	f, err = decodeOne[float32](msgp.AppendFloat64(nil, 1.5))
	require.NoError(t, err)
	assert.Equal(t, float32(1.5), f)
	g, err := decodeOne[float64](msgp.AppendInt(nil, -7))
	require.NoError(t, err)
	assert.Equal(t, -7.0, g)
}

// Values decoded into any have the type the module's decoders give them,
// whatever width was sent: int64, float64.
func TestCodecAny(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want any
	}{
		{msgp.AppendInt(nil, 1), int64(1)},
		{msgp.AppendUint(nil, 300), int64(300)},
		{msgp.AppendInt(nil, -40000), int64(-40000)},
		{msgp.AppendUint(nil, math.MaxUint64), uint64(math.MaxUint64)},
		{msgp.AppendFloat32(nil, 1.5), 1.5},
		{msgp.AppendFloat64(nil, 2.5), 2.5},
		{msgp.AppendString(nil, "x"), "x"},
		{msgp.AppendBin(nil, []byte{1}), []byte{1}},
		{msgp.AppendBool(nil, true), true},
		{msgp.AppendNil(nil), nil},
	} {
		v, err := decodeOne[any](c.b)
		require.NoError(t, err)
		assert.Equal(t, c.want, v)
	}
}

// The batched decoding of a run of results agrees with the record by
// record one, and leaves what it does not handle (a number that does not
// fit, an error record) to it.
func TestOkRunStopsAtTheUnusual(t *testing.T) {
	var b []byte
	for _, x := range []int64{1, -2, 300} {
		b = msgp.AppendInt(append(b, statusOK), x)
	}
	b = msgp.AppendInt(append(b, statusOK), 1000) // not an int8
	b = msgp.AppendInt(append(b, statusOK), 5)
	var d decState
	d.reset(b)
	dst := make([]int16, 5)
	n := newCodec[int16]().okRun(&d, dst)
	assert.Equal(t, 5, n)
	assert.Equal(t, []int16{1, -2, 300, 1000, 5}, dst)
	d.reset(b)
	dst8 := make([]int8, 5)
	n = newCodec[int8]().okRun(&d, dst8)
	assert.Equal(t, 2, n, "300 is the first that does not fit an int8")
	assert.Equal(t, byte(statusOK), b[d.p])
}

//go:build linux

package manager_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// checkAddRange checks that Dict.Add, Value.Add and Array.Add on a T
// refuse a sum past hi (and past lo, when step can be negated in T) with
// ErrOverflow and leave the stored value as it was, and that a sum that
// reaches hi exactly is fine.
func checkAddRange[T number](t *testing.T, m *manager.Manager, lo, hi, step T, negative bool) {
	t.Run(fmt.Sprintf("%T", hi), func(t *testing.T) {
		ctx := testbin.Context(t)
		d, err := manager.NewDict[string, T](ctx, m)
		require.NoError(t, err)
		defer d.Close()
		v, err := manager.NewValue[T](ctx, m, 0)
		require.NoError(t, err)
		defer v.Close()
		a, err := manager.NewArray[T](ctx, m, []T{0})
		require.NoError(t, err)
		defer a.Close()
		type target struct {
			name string
			set  func(T) error
			add  func(T) (T, error)
			get  func() (T, error)
		}
		targets := []target{
			{"Dict",
				func(x T) error { return d.Set(ctx, "k", x) },
				func(x T) (T, error) { return d.Add(ctx, "k", x) },
				func() (T, error) { x, _, err := d.Get(ctx, "k"); return x, err }},
			{"Value",
				func(x T) error { return v.Set(ctx, x) },
				func(x T) (T, error) { return v.Add(ctx, x) },
				func() (T, error) { return v.Get(ctx) }},
			{"Array",
				func(x T) error { return a.Set(ctx, 0, x) },
				func(x T) (T, error) { return a.Add(ctx, 0, x) },
				func() (T, error) { return a.Get(ctx, 0) }},
		}
		for _, tg := range targets {
			require.NoError(t, tg.set(hi-step))
			got, err := tg.add(step)
			require.NoError(t, err, tg.name)
			assert.Equal(t, hi, got, tg.name)
			_, err = tg.add(step)
			assert.ErrorIs(t, err, manager.ErrOverflow, "%s: %v + %v", tg.name, hi, step)
			got, err = tg.get()
			require.NoError(t, err)
			assert.Equal(t, hi, got, "%s: a refused Add changed the value", tg.name)
			if negative {
				require.NoError(t, tg.set(lo))
				_, err = tg.add(-step)
				assert.ErrorIs(t, err, manager.ErrOverflow, "%s: %v - %v", tg.name, lo, step)
			}
		}
	})
}

// Every typed Add checks the range of its type: nothing wraps around, and
// a float32 does not overflow to an infinity.
func TestAddOverflowEachType(t *testing.T) {
	m := start(t)
	checkAddRange[int8](t, m, math.MinInt8, math.MaxInt8, 1, true)
	checkAddRange[int16](t, m, math.MinInt16, math.MaxInt16, 1, true)
	checkAddRange[int32](t, m, math.MinInt32, math.MaxInt32, 1, true)
	checkAddRange[int64](t, m, math.MinInt64, math.MaxInt64, 1, true)
	checkAddRange[int](t, m, math.MinInt, math.MaxInt, 1, true)
	checkAddRange[uint8](t, m, 0, math.MaxUint8, 1, false)
	checkAddRange[uint16](t, m, 0, math.MaxUint16, 1, false)
	checkAddRange[uint32](t, m, 0, math.MaxUint32, 1, false)
	checkAddRange[uint64](t, m, 0, math.MaxUint64, 1, false)
	checkAddRange[uint](t, m, 0, math.MaxUint, 1, false)
	checkAddRange[float32](t, m, -math.MaxFloat32, math.MaxFloat32, math.MaxFloat32/2, true)
	checkAddRange[float64](t, m, -math.MaxFloat64, math.MaxFloat64, math.MaxFloat64/2, true)
}

// An Add on an interface-typed Dict knows no Go type: it is exact up to
// int64 and uint64.
func TestAddAnyRange(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t)
	d, err := manager.NewDict[string, any](ctx, m)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Set(ctx, "k", int8(127)))
	got, err := d.Add(ctx, "k", 1)
	require.NoError(t, err)
	assert.EqualValues(t, 128, got)
}

// An Array of bytes is an array of numbers, not one binary string.
func TestArrayOfBytes(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t)
	a, err := manager.NewArray(ctx, m, []byte{1, 2, 250})
	require.NoError(t, err)
	defer a.Close()
	got, err := a.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 250}, got)
	n, err := a.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

// A List of bytes is a list of numbers too.
func TestListOfBytes(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t)
	l, err := manager.NewList[byte](ctx, m)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Extend(ctx, []byte{1, 2}))
	require.NoError(t, l.Append(ctx, 250))
	got, err := l.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 250}, got)
}

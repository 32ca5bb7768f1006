//go:build linux

package sharedmem_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/sharedmem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockName returns a name no other test run uses, and removes the block
// when the test ends if the test left it behind.
func blockName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("mpgo-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	t.Cleanup(func() { os.Remove("/dev/shm/" + name) })
	return name
}

func TestNewZeroed(t *testing.T) {
	m, err := sharedmem.New(10000)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, 10000, m.Size())
	assert.Equal(t, "", m.Name())
	b := m.Bytes()
	require.Len(t, b, 10000)
	for i, x := range b {
		if x != 0 {
			t.Fatalf("byte %d is %d", i, x)
		}
	}
	b[9999] = 7
	assert.Equal(t, byte(7), m.Bytes()[9999])
	assert.NoError(t, m.Unlink(), "anonymous: nothing to unlink")
}

func TestBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, math.MinInt} {
		_, err := sharedmem.New(n)
		assert.ErrorIs(t, err, sharedmem.ErrSize, "New(%d)", n)
		_, err = sharedmem.Create("mpgo-never", n)
		assert.ErrorIs(t, err, sharedmem.ErrSize, "Create(%d)", n)
		_, err = sharedmem.NewArray[float64](n)
		assert.ErrorIs(t, err, sharedmem.ErrSize, "NewArray(%d)", n)
	}
	// More than the address space: the kernel refuses the mapping.
	_, err := sharedmem.New(math.MaxInt)
	assert.ErrorIs(t, err, sharedmem.ErrSize)
	_, err = sharedmem.NewArray[float64](math.MaxInt / 4)
	assert.ErrorIs(t, err, sharedmem.ErrSize, "n*8 overflows")
	_, err = os.Stat("/dev/shm/mpgo-never")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestSlice(t *testing.T) {
	m, err := sharedmem.New(24)
	require.NoError(t, err)
	f, err := sharedmem.Slice[float64](m)
	require.NoError(t, err)
	require.Len(t, f, 3)
	f[2] = 1.5
	i, err := sharedmem.Slice[uint64](m)
	require.NoError(t, err)
	assert.Equal(t, math.Float64bits(1.5), i[2], "views of one block share its bytes")
	b, err := sharedmem.Slice[int8](m)
	require.NoError(t, err)
	assert.Len(t, b, 24)

	m5, err := sharedmem.New(20)
	require.NoError(t, err)
	defer m5.Close()
	_, err = sharedmem.Slice[float64](m5)
	assert.ErrorIs(t, err, sharedmem.ErrSize, "20 bytes are not float64s")
	_, err = sharedmem.Slice[int32](m5)
	assert.NoError(t, err)

	require.NoError(t, m.Close())
	_, err = sharedmem.Slice[float64](m)
	assert.ErrorIs(t, err, sharedmem.ErrClosed)
}

func TestClose(t *testing.T) {
	m, err := sharedmem.New(100)
	require.NoError(t, err)
	require.NoError(t, m.Close())
	assert.NoError(t, m.Close(), "idempotent")
	assert.Nil(t, m.Bytes())

	a, err := sharedmem.NewArray[int32](10)
	require.NoError(t, err)
	require.NoError(t, a.Close())
	assert.NoError(t, a.Close())
	assert.Nil(t, a.Slice())
	assert.Equal(t, 0, a.Len())
	assert.ErrorIs(t, a.Lock().Acquire(t.Context()), lock.ErrClosed)

	v, err := sharedmem.NewValue[int64](3)
	require.NoError(t, err)
	require.NoError(t, v.Close())
	assert.NoError(t, v.Close())
	for name, op := range map[string]func(){
		"Load":           func() { v.Load() },
		"Store":          func() { v.Store(1) },
		"Add":            func() { v.Add(1) },
		"CompareAndSwap": func() { v.CompareAndSwap(3, 4) },
	} {
		func() {
			defer func() {
				err, _ := recover().(error)
				assert.ErrorIs(t, err, sharedmem.ErrClosed, name)
			}()
			op()
			t.Errorf("%s after Close did not panic", name)
		}()
	}

	// A closed object does not travel.
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	defer c2.Close()
	assert.ErrorIs(t, c1.Send(m), sharedmem.ErrClosed)
	assert.ErrorIs(t, c1.Send(a), sharedmem.ErrClosed)
	assert.ErrorIs(t, c1.Send(v), sharedmem.ErrClosed)
}

func TestNamed(t *testing.T) {
	name := blockName(t)
	m, err := sharedmem.Create("/"+name, 1000)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, name, m.Name(), "no leading slash, as Python's .name")
	assert.Equal(t, 1000, m.Size())
	st, err := os.Stat("/dev/shm/" + name)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), st.Size())
	assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())

	_, err = sharedmem.Create(name, 10)
	assert.ErrorIs(t, err, sharedmem.ErrExist)
	assert.ErrorIs(t, err, fs.ErrExist)

	o, err := sharedmem.Open(name)
	require.NoError(t, err)
	assert.Equal(t, 1000, o.Size())
	m.Bytes()[999] = 42
	assert.Equal(t, byte(42), o.Bytes()[999])
	require.NoError(t, o.Close())

	require.NoError(t, m.Unlink())
	assert.Equal(t, byte(42), m.Bytes()[999], "mappings outlive the name")
	_, err = sharedmem.Open(name)
	assert.ErrorIs(t, err, sharedmem.ErrNotExist)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorIs(t, m.Unlink(), sharedmem.ErrNotExist)
}

func TestBadNames(t *testing.T) {
	for _, n := range []string{"", "/", "a/b", "..", ".", "x\x00y", strings.Repeat("n", 256)} {
		_, err := sharedmem.Create(n, 10)
		assert.Error(t, err, "%q", n)
		assert.False(t, errors.Is(err, sharedmem.ErrExist))
		_, err = sharedmem.Open(n)
		assert.Error(t, err, "%q", n)
	}
}

func TestOpenEmpty(t *testing.T) {
	// What a reader sees between a creator's open and its ftruncate.
	name := blockName(t)
	require.NoError(t, os.WriteFile("/dev/shm/"+name, nil, 0o600))
	_, err := sharedmem.Open(name)
	assert.ErrorIs(t, err, sharedmem.ErrSize)
}

func TestValueTypes(t *testing.T) {
	testValue[int8](t, 127, 1, -128)
	testValue[uint8](t, 255, 1, 0)
	testValue[int16](t, -5, 3, -2)
	testValue[uint16](t, 65535, 2, 1)
	testValue[int32](t, math.MaxInt32, 1, math.MinInt32)
	testValue[uint32](t, 7, 5, 12)
	testValue[int64](t, -1, 1, 0)
	testValue[uint64](t, math.MaxUint64, 1, 0)
	testValue[int](t, 40, 2, 42)
	testValue[uint](t, 40, 2, 42)
	testValue[uintptr](t, 40, 2, 42)
	testValue[float32](t, 1.5, 0.25, 1.75)
	testValue[float64](t, -0.5, 0.25, -0.25)
	type celsius float64
	testValue[celsius](t, 20, 1.5, 21.5)
}

func testValue[T sharedmem.Number](t *testing.T, init, delta, sum T) {
	t.Helper()
	v, err := sharedmem.NewValue(init)
	require.NoError(t, err)
	defer v.Close()
	assert.Equal(t, init, v.Load())
	assert.Equal(t, sum, v.Add(delta), "%T", init)
	assert.Equal(t, sum, v.Load())
	assert.False(t, v.CompareAndSwap(init, delta))
	assert.True(t, v.CompareAndSwap(sum, delta))
	assert.Equal(t, delta, v.Load())
	v.Store(init)
	assert.Equal(t, init, v.Load())
}

func TestFloatCompareAndSwapBits(t *testing.T) {
	v, err := sharedmem.NewValue(math.Copysign(0, -1))
	require.NoError(t, err)
	defer v.Close()
	assert.False(t, v.CompareAndSwap(0, 1), "-0 is not +0 bit for bit")
	nan := math.NaN()
	v.Store(nan)
	assert.True(t, v.CompareAndSwap(nan, 2), "the same NaN matches")
	assert.Equal(t, 2.0, v.Load())
}

func TestArrayLen(t *testing.T) {
	a, err := sharedmem.NewArray[float32](1001)
	require.NoError(t, err)
	defer a.Close()
	assert.Equal(t, 1001, a.Len())
	assert.Len(t, a.Slice(), 1001)
	ok, err := a.Lock().TryAcquire()
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.Lock().Release())
}

func TestZeroValues(t *testing.T) {
	var m sharedmem.Memory
	assert.Nil(t, m.Bytes())
	assert.NoError(t, m.Close())
	_, err := sharedmem.Slice[int8](&m)
	assert.ErrorIs(t, err, sharedmem.ErrClosed)
	var a sharedmem.Array[int64]
	assert.Nil(t, a.Slice())
	assert.Equal(t, 0, a.Len())
	assert.NoError(t, a.Close())
	var v sharedmem.Value[int64]
	assert.NoError(t, v.Close())
	assert.Panics(t, func() { v.Add(1) })

	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	defer c2.Close()
	assert.ErrorIs(t, c1.Send(&m), sharedmem.ErrClosed)
	assert.ErrorIs(t, c1.Send(&a), sharedmem.ErrClosed)
	assert.ErrorIs(t, c1.Send(&v), sharedmem.ErrClosed)
}

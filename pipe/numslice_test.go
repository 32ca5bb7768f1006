//go:build linux

package pipe_test

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// numbers holds slices of every number type that the codec encodes and
// decodes by a loop over the slice rather than element by element.
type numbers struct {
	F64 []float64
	F32 []float32
	I   []int
	I8  []int8
	I16 []int16
	I32 []int32
	I64 []int64
	U   []uint
	U16 []uint16
	U32 []uint32
	U64 []uint64
	Any any
	Nil []float64
}

// numberEcho receives numbers and sends each back, decoded and encoded
// again in this process, until EOF.
var numberEcho = process.Register("pipe_test.numberEcho", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	for {
		var v numbers
		if err := c.Recv(&v); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := c.Send(v); err != nil {
			return err
		}
	}
})

// TestNumberSlicesCrossProcess: slices of numbers at the edges of their
// types, and a large []float64, arrive in another process and come back
// bit for bit.
func TestNumberSlicesCrossProcess(t *testing.T) {
	a, b := pair(t)
	p := process.New(numberEcho, b)
	require.NoError(t, p.Start())
	b.Close()

	big := make([]float64, 1<<17) // 1 MiB
	for i := range big {
		big[i] = float64(i) * 1.25e-3
	}
	big[7] = math.NaN()
	big[8] = math.Copysign(0, -1)
	big[9] = math.Inf(-1)
	sent := []numbers{{
		F64: big,
		F32: []float32{math.MaxFloat32, -math.SmallestNonzeroFloat32, float32(math.Inf(1)), 0.1},
		I:   []int{math.MinInt, math.MaxInt, -33, 0},
		I8:  []int8{math.MinInt8, math.MaxInt8, -1},
		I16: []int16{math.MinInt16, math.MaxInt16, 255},
		I32: []int32{math.MinInt32, math.MaxInt32, 65536},
		I64: []int64{math.MinInt64, math.MaxInt64, -129},
		U:   []uint{math.MaxUint, 128},
		U16: []uint16{math.MaxUint16, 0},
		U32: []uint32{math.MaxUint32, 256},
		U64: []uint64{math.MaxUint64, 1 << 63, 127},
		Any: []float64{2.5},
	}, {F64: []float64{}, I32: []int32{}}}
	for _, v := range sent {
		require.NoError(t, a.Send(v))
		var got numbers
		require.NoError(t, a.Recv(&got))
		require.Equal(t, len(v.F64), len(got.F64))
		require.Equal(t, v.F64 == nil, got.F64 == nil, "nil stays nil, empty stays empty")
		for i := range v.F64 {
			if math.Float64bits(v.F64[i]) != math.Float64bits(got.F64[i]) {
				t.Fatalf("F64[%d] = %v, sent %v", i, got.F64[i], v.F64[i])
			}
		}
		got.F64, v.F64 = nil, nil
		if v.Any != nil {
			v.Any = []any{2.5} // into any, a list of float64
		}
		assert.Equal(t, v, got)
	}
	a.Close()
	require.NoError(t, p.Join(testbin.Context(t)))
}

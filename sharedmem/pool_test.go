//go:build linux

package sharedmem_test

import (
	"context"
	"math"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/sharedmem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// workerArray is the shared array in each pool worker, set by its
// Initializer (Python: a global set by initializer=, initargs=).
var workerArray *sharedmem.Array[float64]

var initWorker = process.Register("sharedmem_test.initWorker", func(ctx context.Context, a *sharedmem.Array[float64]) error {
	workerArray = a
	return nil
})

type span struct{ Lo, Hi int }

// fill writes sqrt(i) into its span of the shared array and returns only
// how many it wrote: the data itself does not travel back.
var fillTask = pool.Register("sharedmem_test.fill", func(ctx context.Context, s span) (int, error) {
	x := workerArray.Slice()
	for i := s.Lo; i < s.Hi; i++ {
		x[i] = math.Sqrt(float64(i))
	}
	return s.Hi - s.Lo, nil
})

func TestPoolInitializer(t *testing.T) {
	const n, chunk = 1 << 20, 1 << 14
	a, err := sharedmem.NewArray[float64](n)
	require.NoError(t, err)
	defer a.Close()
	p, err := pool.New(pool.Workers(2), pool.Initializer(initWorker, a))
	require.NoError(t, err)
	defer p.Terminate()
	var spans []span
	for lo := 0; lo < n; lo += chunk {
		spans = append(spans, span{lo, lo + chunk})
	}
	ctx := testbin.Context(t)
	counts, err := pool.Map(ctx, p, fillTask, spans)
	require.NoError(t, err)
	total := 0
	for _, c := range counts {
		total += c
	}
	assert.Equal(t, n, total)
	for i, x := range a.Slice() {
		if x != math.Sqrt(float64(i)) {
			t.Fatalf("element %d is %v", i, x)
		}
	}
	require.NoError(t, p.Close())
	require.NoError(t, p.Join(ctx))
}

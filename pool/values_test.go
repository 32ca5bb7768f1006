//go:build linux

package pool_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	blob = pool.Register("test.blob", func(ctx context.Context, n int) ([]byte, error) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b, nil
	})
	blobLen = pool.Register("test.blobLen", func(ctx context.Context, b []byte) (int, error) {
		for i, c := range b {
			if c != byte(i%251) {
				return 0, fmt.Errorf("byte %d is %d", i, c)
			}
		}
		return len(b), nil
	})
)

// Values larger than the read buffer, the shared segment (1 MiB) and a
// chunk's usual size travel both ways.
func TestLargeValues(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	sizes := []int{0, 1, 100 << 10, 900 << 10, 3 << 20, 5, 70 << 10, 2 << 20}
	res, err := pool.Map(testbin.Context(t), p, blob, sizes, pool.Chunksize(3))
	require.NoError(t, err)
	for i, b := range res {
		require.Len(t, b, sizes[i])
		for j := 0; j < len(b); j += 4099 {
			require.Equal(t, byte(j%251), b[j])
		}
	}
	lens, err := pool.Map(testbin.Context(t), p, blobLen, res, pool.Chunksize(4))
	require.NoError(t, err)
	assert.Equal(t, sizes, lens)
}

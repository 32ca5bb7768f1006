package pool_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMapBasic(t *testing.T) {
	p, err := pool.New(pool.Workers(2))
	require.NoError(t, err)
	defer func() { p.Close(); p.Join(ctxT(t)) }()
	args := make([]int, 1000)
	for i := range args {
		args[i] = i
	}
	res, err := pool.Map(ctxT(t), p, square, args)
	require.NoError(t, err)
	for i, r := range res {
		assert.Equal(t, i*i, r)
	}
}

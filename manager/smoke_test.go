package manager_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	m := start(t)
	ctx := ctxT(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "a", 1))
	v, ok, err := d.Get(ctx, "a")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	n, err := d.Add(ctx, "a", 41)
	require.NoError(t, err)
	assert.Equal(t, 42, n)
}

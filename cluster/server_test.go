//go:build linux

package cluster_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartConnect(t *testing.T) {
	s, c := setup(t)
	require.NotNil(t, c)
	assert.Regexp(t, `^nats://127\.0\.0\.1:\d+$`, s.URL())
}

func TestWrongTokenRefused(t *testing.T) {
	s := startServer(t, cluster.Token("right"))
	ctx := testbin.Context(t)
	_, err := cluster.Connect(ctx, s.URL(), cluster.Token("wrong"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrong or missing token")
	_, err = cluster.Connect(ctx, s.URL())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrong or missing token")
	c, err := cluster.Connect(ctx, s.URL(), cluster.Token("right"))
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func TestInsecure(t *testing.T) {
	ctx := testbin.Context(t)
	_, err := cluster.Start(ctx, cluster.Listen("0.0.0.0:0"))
	assert.ErrorIs(t, err, cluster.ErrInsecure)
	_, err = cluster.Start(ctx, cluster.Listen("0.0.0.0:0"), cluster.Token("t"))
	assert.ErrorIs(t, err, cluster.ErrInsecure)
	_, err = cluster.Connect(ctx, "nats://192.0.2.1:4222", cluster.Token("t"))
	assert.ErrorIs(t, err, cluster.ErrInsecure)
}

func TestInvalidOption(t *testing.T) {
	ctx := testbin.Context(t)
	_, err := cluster.Start(ctx, cluster.MaxSize(3))
	require.ErrorIs(t, err, cluster.ErrInvalidOption)
	assert.Contains(t, err.Error(), "MaxSize")
	assert.Contains(t, err.Error(), "Start")
	_, err = cluster.Connect(ctx, "nats://127.0.0.1:1", cluster.Listen("127.0.0.1:0"))
	require.ErrorIs(t, err, cluster.ErrInvalidOption)
	assert.Contains(t, err.Error(), "Listen")
	assert.Contains(t, err.Error(), "Connect")
	_, err = cluster.Start(ctx, cluster.Listen("nonsense"))
	require.ErrorIs(t, err, cluster.ErrInvalidOption)
}

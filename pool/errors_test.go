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

var ctxErr = pool.Register("test.ctxErr", func(ctx context.Context, _ int) (int, error) {
	return 0, fmt.Errorf("gave up: %w", context.DeadlineExceeded)
})

func TestTaskErrorUnwrapsContextErrors(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	_, err := pool.Apply(testbin.Context(t), p, ctxErr, 0)
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.Equal(t, "gave up: context deadline exceeded", te.Message)
}

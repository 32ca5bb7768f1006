//go:build linux

package pool_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	half  = pool.Register("test.half", func(ctx context.Context, x int8) (int8, error) { return x / 2, nil })
	anyID = pool.Register("test.anyID", func(ctx context.Context, x any) (any, error) { return x, nil })
	wide  = pool.Register("test.wide", func(ctx context.Context, x int) (int, error) { return x * 1000, nil })
)

// A number that does not fit the task's argument type fails its item in
// the worker with an error saying so, never a narrowed value: here a
// chunk from elsewhere (a Runner's peer) sends 100000 to a task of int8.
func TestNarrowArgumentIsAnError(t *testing.T) {
	local := newPool(t, pool.Workers(1))
	args := msgp.AppendInt(msgp.AppendInt(msgp.AppendInt(nil, 100), 100000), -1)
	var got []driver.Result
	err := local.Runner().Run(testbin.Context(t), driver.Chunk{Task: half.Name(), Count: 3, Args: args},
		func(r driver.Result) bool {
			r.Value = bytes.Clone(r.Value)
			got = append(got, r)
			return true
		})
	require.NoError(t, err)
	require.Len(t, got, 3)
	for _, r := range got {
		switch r.Index {
		case 0:
			require.NoError(t, r.Err)
			v, _, err := msgp.ReadInt(r.Value)
			require.NoError(t, err)
			assert.EqualValues(t, 50, v)
		case 1:
			var te *pool.TaskError
			require.ErrorAs(t, r.Err, &te)
			assert.Equal(t, 1, te.Index)
			assert.Contains(t, te.Message, "cannot decode number 100000 into Go value of type int8")
		case 2:
			// Only the item that does not fit fails.
			require.NoError(t, r.Err)
			v, _, err := msgp.ReadInt(r.Value)
			require.NoError(t, err)
			assert.EqualValues(t, 0, v)
		}
	}
}

// The same for a result: a pool from Open whose backend answers 300000
// for a task of int8 gets that item's error.
func TestNarrowResultIsAnError(t *testing.T) {
	local := newPool(t, pool.Workers(1))
	// The backend runs "test.wide" (int -> int) for a caller that asked
	// for "test.half" (int8 -> int8): what a host with another build
	// would answer.
	p, err := pool.Open(renamed{local.Runner(), wide.Name()})
	require.NoError(t, err)
	defer func() { p.Terminate(); p.Join(testbin.Context(t)) }()
	res, err := pool.Map(testbin.Context(t), p, half, []int8{0, 1})
	require.Error(t, err, "got %v", res)
	assert.Contains(t, err.Error(), "cannot decode the result")
	assert.Contains(t, err.Error(), "cannot decode number 1000 into Go value of type int8")
}

type renamed struct {
	driver.Runner
	task string
}

func (r renamed) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	c.Task = r.task
	return r.Runner.Run(ctx, c, deliver)
}

// Numbers that travel as any come back as int64 and float64, whatever
// width was sent, so that x == int64(1) holds.
func TestAnyNumbersAreInt64AndFloat64(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	res, err := pool.Map(testbin.Context(t), p, anyID, []any{int8(1), uint16(300), float32(1.5), "s", nil, true})
	require.NoError(t, err)
	assert.Equal(t, []any{int64(1), int64(300), 1.5, "s", nil, true}, res)
}

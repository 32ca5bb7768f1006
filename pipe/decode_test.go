//go:build linux

package pipe_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type sentRecord struct {
	A int
	B string
}

type otherRecord struct{ X int }

type job struct {
	name  string
	count int
}

// sender sends, in order, what the decode tests receive in the parent;
// for a value it cannot send it sends its error's text instead.
var sender = process.Register("pipe_test.sender", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	for _, v := range []any{
		100000, -1, sentRecord{1, "b"},
		1, []any{int8(1), uint16(300), -5, float32(1.5)}, map[string]any{"n": map[string]any{"m": 2}},
		job{"a", 1},
	} {
		err := c.Send(v)
		if err != nil {
			err = c.Send(err.Error())
		}
		if err != nil {
			return err
		}
	}
	return nil
})

// Values sent by a child are decoded by the parent's rules: no silent
// narrowing, no struct received into an unrelated one, integers into any
// as int64; a struct with no exported fields is refused by the sender.
func TestDecodeRulesAcrossProcesses(t *testing.T) {
	a, b := pair(t)
	p := process.New(sender, b)
	require.NoError(t, p.Start())
	b.Close()
	defer func() { require.NoError(t, p.Join(testbin.Context(t))) }()

	var i8 int8
	err := a.Recv(&i8)
	var de *pipe.DecodeError
	assert.ErrorAs(t, err, &de)
	assert.ErrorContains(t, err, "cannot decode number 100000 into Go value of type int8")
	var u uint
	err = a.Recv(&u)
	assert.ErrorContains(t, err, "cannot decode number -1 into Go value of type uint")
	var other otherRecord
	err = a.Recv(&other)
	assert.ErrorContains(t, err, `cannot decode a map with keys "A", "B" into Go value of type pipe_test.otherRecord`)

	var x any
	require.NoError(t, a.Recv(&x), "the Conn stays usable after a decode error")
	assert.Equal(t, int64(1), x)
	assert.True(t, x == any(int64(1)))
	require.NoError(t, a.Recv(&x))
	assert.Equal(t, []any{int64(1), int64(300), int64(-5), 1.5}, x)
	require.NoError(t, a.Recv(&x))
	assert.Equal(t, map[string]any{"n": map[string]any{"m": int64(2)}}, x)

	var msg string
	require.NoError(t, a.Recv(&msg))
	assert.Contains(t, msg, "type pipe_test.job has no exported fields")
}

// An 8 MiB message of empty maps would take some 670 MB decoded into any:
// Recv refuses it with the decode budget's error, having allocated little
// beyond the message, and the Conn stays usable.
func TestRecvDecodeBudget(t *testing.T) {
	a, b := pair(t)
	const size = 8 << 20
	msg := make([]byte, size)
	n := size - 5
	msg[0], msg[1], msg[2], msg[3], msg[4] = 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	for i := 5; i < size; i++ {
		msg[i] = 0x80
	}
	go func() {
		a.SendBytes(msg)
		a.Send("after")
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v any
	err := b.Recv(&v)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, pipe.ErrDecodeBudget)
	assert.ErrorContains(t, err, "pipe: recv: wire: message would decode into too much memory: a 8388608-byte message")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(2*size), "allocated beyond the message")
	require.NoError(t, b.Recv(&v))
	assert.Equal(t, "after", v)
}

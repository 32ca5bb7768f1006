package process

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClipMessage(t *testing.T) {
	assert.Equal(t, "short", clipMessage("short", 10))
	s := strings.Repeat("é", 1000) // 2 bytes a rune
	for _, max := range []int{101, 100, 7} {
		got := clipMessage(s, max)
		assert.True(t, utf8.ValidString(got), "cut inside a rune at max %d", max)
		assert.True(t, strings.HasPrefix(got, "é"))
		assert.True(t, strings.HasSuffix(got, "é"))
		assert.Contains(t, got, "bytes elided")
		assert.Less(t, len(got), max+64)
	}
}

var takeBytes = Register("internal.bytes", func(ctx context.Context, b []byte) error { return nil })

// An argument over the child's bootstrap limit is an error from Start, not
// a child that dies saying it was started by hand.
func TestBootstrapTooLarge(t *testing.T) {
	defer func(old int) { maxBootstrapSize = old }(maxBootstrapSize)
	maxBootstrapSize = 1 << 20
	p := New(takeBytes, make([]byte, 2<<20))
	err := p.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the limit")
	assert.Equal(t, 0, p.Pid())
}

var sleeper = Register("internal.sleep", func(ctx context.Context, ready *pipe.Conn) error {
	if err := ready.Send(true); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
})

// The path for kernels without pidfds: exit codes, signals, Join.
func TestWithoutPidfd(t *testing.T) {
	defer func() { noPidfd = false }()
	noPidfd = true
	ctx := context.Background()
	p := New(takeBytes, []byte("x"))
	require.NoError(t, p.Start())
	require.Nil(t, p.os.pidfd)
	require.NoError(t, p.Join(ctx))

	for _, tc := range []struct {
		send func(*Process) error
		code int
	}{{(*Process).Kill, -9}, {(*Process).Terminate, -15}, {(*Process).Interrupt, 1}} {
		a, b, err := pipe.Pipe()
		require.NoError(t, err)
		p := New(sleeper, b)
		require.NoError(t, p.Start())
		b.Close()
		require.Nil(t, p.os.pidfd)
		var ok bool
		require.NoError(t, a.Recv(&ok)) // the function runs: SIGINT finds its handler
		a.Close()
		require.NoError(t, tc.send(p))
		var ee *ExitError
		require.ErrorAs(t, p.Join(ctx), &ee)
		assert.Equal(t, tc.code, ee.Code)
		assert.NoError(t, tc.send(p), "signalling a reaped child is a no-op")
	}
}

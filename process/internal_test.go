//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mpgo/multiprocessing/internal/wire"
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

// An argument over the limit is an error from Start, not a child that dies
// saying it was started by hand. The limit is on the encoded argument
// alone, as the message says: one exactly at the limit starts.
func TestArgumentOverLimit(t *testing.T) {
	defer func(old int) { maxArgSize = old }(maxArgSize)
	maxArgSize = 1 << 20
	arg := make([]byte, 2<<20)
	encoded, _, err := wire.Marshal(arg)
	require.NoError(t, err)
	p := New(takeBytes, arg)
	err = p.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("the argument is %d bytes encoded, over the limit of %d bytes", len(encoded), maxArgSize))
	assert.Equal(t, 0, p.Pid())

	header := len(encoded) - len(arg) // msgpack's bin32 prefix
	require.NoError(t, run(t, New(takeBytes, make([]byte, maxArgSize-header))), "an argument of exactly the limit")
}

// Refusing a large argument costs its encoding once, not copies of it:
// Start used to copy it into a bootstrap message and again into a frame
// (3 GB and 10 s for one just over 1 GiB).
func TestArgumentOverLimitCost(t *testing.T) {
	defer func(old int) { maxArgSize = old }(maxArgSize)
	maxArgSize = 1 << 20
	arg := make([]byte, 32<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	require.Error(t, New(takeBytes, arg).Start())
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	// Encoding takes up to twice the argument (buffer growth, and more
	// under the race detector); the copies took three times.
	assert.Less(t, allocated, uint64(len(arg))*5/2, "Start allocated %d bytes to refuse a %d-byte argument", allocated, len(arg))
}

func run(t *testing.T, p *Process) error {
	t.Helper()
	require.NoError(t, p.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Join(ctx)
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

// Every failure path of Start and of a child's life gives its descriptors
// back: none of them may leave a pipe, socket or pidfd behind.
func TestNoFDLeakOnFailures(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	ctx := context.Background()
	require.NoError(t, New(takeBytes, nil).Start()) // warm up /dev/null and the like
	Shutdown(ctx)
	before := count()

	var out bytes.Buffer
	// Refused by Start, before or after the pipes for captured output.
	assert.Error(t, New(takeBytes, nil, WithEnv("BAD"), WithStdout(&out), WithStderr(&out)).Start())
	assert.Error(t, New(Func[chan int]{name: "internal.bytes"}, make(chan int), WithStdout(&out)).Start())
	func() {
		defer func(old int) { maxArgSize = old }(maxArgSize)
		maxArgSize = 10
		assert.Error(t, New(takeBytes, make([]byte, 100), WithStderr(&out)).Start())
	}()
	// A child that dies before reading its bootstrap, one that fails with a
	// huge message, one that panics, one killed.
	for _, p := range []*Process{
		New(takeBytes, make([]byte, 4<<20), WithEnv("MPGO_BENCH_EXIT=1"), WithStdout(&out)),
		New(failWith, strings.Repeat("x", 1<<20), WithStderr(&out)),
		New(panicWith, "boom", WithStdout(&out), WithStderr(&out)),
	} {
		require.NoError(t, p.Start())
		assert.Error(t, p.Join(ctx))
	}
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	p := New(sleeper, b, WithStdout(&out))
	require.NoError(t, p.Start())
	b.Close()
	var ok bool
	require.NoError(t, a.Recv(&ok))
	require.NoError(t, p.Kill())
	assert.Error(t, p.Join(ctx))
	a.Close()
	assert.Equal(t, before, count())
}

var (
	failWith  = Register("internal.fail", func(ctx context.Context, msg string) error { return errors.New(msg) })
	panicWith = Register("internal.panic", func(ctx context.Context, msg string) error { panic(msg) })
)

// The "started" report every worker sends is written as a constant, not
// encoded at run time: it must stay what the encoder makes of it.
func TestStartedFrame(t *testing.T) {
	b, err := encodeMsg(report{Kind: "started"})
	require.NoError(t, err)
	assert.Equal(t, string(b), startedFrame)
	var rep report
	require.NoError(t, readMsg(strings.NewReader(startedFrame), &rep, maxReportSize))
	assert.Equal(t, report{Kind: "started"}, rep)
}

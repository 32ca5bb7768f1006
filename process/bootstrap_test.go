//go:build linux

package process_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var takeBytes = process.Register("test.takeBytes", func(ctx context.Context, b []byte) error { return nil })

// startWithin runs p.Start and fails the test if it does not return within d.
func startWithin(t *testing.T, p *process.Process, d time.Duration) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Start() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		t.Fatalf("Start did not return within %v", d)
		return nil
	}
}

// A child that dies before it has read its bootstrap must not leave Start
// blocked writing a large argument into a socket nobody reads.
func TestStartChildDiesBeforeReadingLargeArgument(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 8<<20)
	// MPGO_BENCH_EXIT makes the child exit in TestMain, before process.Init.
	p := process.New(takeBytes, big, process.WithEnv("MPGO_BENCH_EXIT=1"))
	require.NoError(t, startWithin(t, p, 10*time.Second))
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(testbin.Context(t)), &ee)
	assert.NotEqual(t, 0, ee.Code)
}

// A function whose error text is larger than the bootstrap socket's buffer
// must not deadlock the child (blocked writing its report) against the
// parent (waiting for the child to exit before reading the report).
func TestLargeErrorMessage(t *testing.T) {
	msg := strings.Repeat("x", 1<<20)
	p := process.New(fail, msg)
	require.NoError(t, p.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Join(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.Kill()
		p.Join(testbin.Context(t))
		t.Fatal("Join hung: the child blocked writing a large error report")
	}
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.Code)
	assert.True(t, strings.HasPrefix(ee.Message, "xxxx"), "the head of the message arrives")
	assert.True(t, strings.HasSuffix(ee.Message, "xxxx"), "and its tail")
	assert.Contains(t, ee.Message, "bytes elided")
	assert.Less(t, len(ee.Message), 100<<10, "a huge message is clipped")
}

// While Start is busy (here writing a large argument to a child that is
// slow to read it), the other methods answer at once instead of waiting
// for it: Join's ctx is honoured.
func TestMethodsDuringStart(t *testing.T) {
	p := process.New(takeBytes, bytes.Repeat([]byte("a"), 16<<20), process.WithEnv("MPGO_TEST_INIT_DELAY=1s"))
	started := make(chan error, 1)
	go func() { started <- p.Start() }()
	for {
		select {
		case err := <-started:
			require.NoError(t, err)
			require.NoError(t, p.Join(testbin.Context(t)))
			return
		default:
		}
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		p.Join(ctx)
		cancel()
		p.Pid()
		p.IsAlive()
		require.Less(t, time.Since(t0), testbin.Slack, "a method waited for Start")
	}
}

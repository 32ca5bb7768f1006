package process_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	f := process.Register("test.bigarg", func(ctx context.Context, b []byte) error { return nil })
	// MPGO_BENCH_EXIT makes the child exit in TestMain, before process.Init.
	p := process.New(f, big, process.WithEnv("MPGO_BENCH_EXIT=1"))
	require.NoError(t, startWithin(t, p, 10*time.Second))
	var ee *process.ExitError
	require.ErrorAs(t, p.Join(ctxT(t)), &ee)
	assert.NotEqual(t, 0, ee.Code)
}

//go:build linux

package process_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/exithook"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var goexit = process.Register("test.goexit", func(ctx context.Context, _ struct{}) error {
	runtime.Goexit()
	return nil
})

// runtime.Goexit in the function ends the child with an error instead of
// leaving it (and Join) hanging.
func TestGoexitInFunction(t *testing.T) {
	p := process.New(goexit, struct{}{})
	require.NoError(t, p.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Join(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.Kill()
		p.Join(testbin.Context(t))
		t.Fatal("the child hung after runtime.Goexit")
	}
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.Code)
	assert.Contains(t, ee.Message, "Goexit")
}

var hookPanics = process.Register("test.hookPanics", func(ctx context.Context, _ struct{}) error {
	exithook.Register(func() error { panic("exit hook failed") })
	return errors.New("the function's own error")
})

// The function's error reaches the parent even when the worker dies after
// the function returned (here in an exit hook; a Terminate while it joins
// its own children is the same): it is reported before that work starts.
func TestErrorReportedBeforeExitWork(t *testing.T) {
	var stderr bytes.Buffer
	p := process.New(hookPanics, struct{}{}, process.WithStderr(&stderr))
	var ee *process.ExitError
	require.ErrorAs(t, run(t, p), &ee)
	assert.Equal(t, 2, ee.Code, "the hook's panic ends the worker")
	assert.Equal(t, "the function's own error", ee.Message)
	assert.Contains(t, stderr.String(), "exit hook failed")
}

var leaveGoroutines = process.Register("test.leaveGoroutines", func(ctx context.Context, _ struct{}) error {
	go func() {
		for {
			os.Stdout.WriteString("still here\n")
		}
	}()
	go func() { select {} }()
	return nil
})

// Goroutines the function leaves running end with the child, as at the end
// of main: the child exits 0 and Join returns.
func TestGoroutinesLeftRunning(t *testing.T) {
	var out bytes.Buffer
	p := process.New(leaveGoroutines, struct{}{}, process.WithStdout(&out))
	require.NoError(t, p.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Join(ctx))
}

// Shutdown in a main process runs the exit work (queue flushes) once.
func TestShutdownRunsExitHooks(t *testing.T) {
	n := 0
	exithook.Register(func() error { n++; return nil })
	require.NoError(t, process.Shutdown(testbin.Context(t)))
	require.NoError(t, process.Shutdown(testbin.Context(t)))
	assert.Equal(t, 1, n)
}

//go:build linux

package process_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"

	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
)

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

var chatty = process.Register("test.chatty", func(ctx context.Context, n int) error {
	line := strings.Repeat("y", 1023) + "\n"
	for range n {
		if _, err := os.Stdout.WriteString(line); err != nil {
			return err
		}
	}
	return nil
})

// A WithStdout writer that fails must not get the child killed by SIGPIPE:
// the rest of its output is drained.
func TestFailingWriterDoesNotKillChild(t *testing.T) {
	p := process.New(chatty, 512, process.WithStdout(failingWriter{}))
	require.NoError(t, run(t, p))
}

// The stderr tail in ExitError does not depend on the writer succeeding.
func TestFailingWriterKeepsStderrTail(t *testing.T) {
	p := process.New(printer, 10, process.WithStderr(failingWriter{}))
	var ee *process.ExitError
	require.ErrorAs(t, run(t, p), &ee)
	require.True(t, strings.HasSuffix(string(ee.Stderr), "err 9\n"), "tail %q", ee.Stderr)
}

// background starts a grandchild that inherits the child's stdout and
// outlives it, reports its pid, and returns.
var background = process.Register("test.background", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	cmd := exec.Command("sleep", "30")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	os.Stdout.WriteString("child output\n")
	return c.Send(cmd.Process.Pid)
})

// A grandchild holding the captured stdout open must not make Join wait
// for it: Join returns once the child has exited and its own output is in
// the writer.
func TestJoinNotHeldByGrandchildOutput(t *testing.T) {
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	var out, errb bytes.Buffer
	p := process.New(background, b, process.WithStdout(&out), process.WithStderr(&errb))
	require.NoError(t, p.Start())
	b.Close()
	var gpid int
	require.NoError(t, a.Recv(&gpid))
	defer syscall.Kill(gpid, syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Join(ctx), "Join waited for a grandchild holding the output pipe")
	assert.Equal(t, "child output\n", out.String())
}

// slowWriter takes its time with every write, so the child's exit finds
// the copy busy in Write with output still buffered in the pipe.
type slowWriter struct{ bytes.Buffer }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return w.Buffer.Write(p)
}

// Join still delivers every byte the child wrote when the writer lags
// behind: what is left in the pipe at the exit is read after it.
func TestSlowWriterGetsAllOutput(t *testing.T) {
	var w slowWriter
	p := process.New(chatty, 300, process.WithStdout(&w)) // 300 KiB: several pipefuls
	require.NoError(t, run(t, p))
	assert.Equal(t, 300*1024, w.Len())
}

package process_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

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

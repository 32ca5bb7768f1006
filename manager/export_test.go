package manager

import (
	"context"
	"time"

	"github.com/mpgo/multiprocessing/process"
)

// Stats returns the server's object, connection and token counts (the
// ManagerMixin check of Python's tests: no objects left behind).
func Stats(ctx context.Context, m *Manager) (objects, conns, tokens int, err error) {
	return m.stats(ctx)
}

// ServerProcess returns a started manager's server process.
func ServerProcess(m *Manager) *process.Process { return m.proc }

// SetUnresponsive changes how long a call whose ctx ended waits for a
// silent server, and returns a function that restores it.
func SetUnresponsive(d time.Duration) (restore func()) {
	old := unresponsive
	unresponsive = d
	return func() { unresponsive = old }
}

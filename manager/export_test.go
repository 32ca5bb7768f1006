//go:build linux

package manager

import (
	"context"

	"github.com/mpgo/multiprocessing/process"
)

// Stats returns the server's object, connection and token counts (the
// ManagerMixin check of Python's tests: no objects left behind).
func Stats(ctx context.Context, m *Manager) (objects, conns, tokens int, err error) {
	return m.stats(ctx)
}

// ServerProcess returns a started manager's server process.
func ServerProcess(m *Manager) *process.Process { return m.proc }

// SocketDir returns the private socket directory of a started manager.
func SocketDir(m *Manager) string { return m.dir }

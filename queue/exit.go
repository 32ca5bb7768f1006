package queue

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/mpgo/multiprocessing/internal/exithook"
)

// Cores with a flusher, so that a worker flushes them when its function
// returns. A main process has no such hook: it must Close (or Flush) its
// queues before it exits (see the package documentation).
var pending struct {
	mu    sync.Mutex
	cores map[*core]struct{}
}

func registerPending(c *core) {
	pending.mu.Lock()
	if pending.cores == nil {
		pending.cores = map[*core]struct{}{}
	}
	pending.cores[c] = struct{}{}
	pending.mu.Unlock()
}

func unregisterPending(c *core) {
	pending.mu.Lock()
	delete(pending.cores, c)
	pending.mu.Unlock()
}

func init() { exithook.Register(flushAtExit) }

// flushAtExit runs in a worker after its function returned: every queue
// with buffered items flushes them while readers make progress. Items that
// cannot be flushed are reported on stderr, never dropped in silence.
func flushAtExit() {
	pending.mu.Lock()
	cores := make([]*core, 0, len(pending.cores))
	for c := range pending.cores {
		cores = append(cores, c)
	}
	pending.mu.Unlock()
	for _, c := range cores {
		if c.closed.Load() {
			continue
		}
		if err := c.flush(context.Background(), c.opts.flushTimeout); err != nil {
			c.abandon.Store(true)
			if n := c.pendingOut.Load(); n > 0 {
				fmt.Fprintf(os.Stderr, "queue: process %d exits with %d items it put never written to its %s: no process read it for %v\n",
					os.Getpid(), n, c.kind, c.opts.flushTimeout)
			}
		}
	}
}

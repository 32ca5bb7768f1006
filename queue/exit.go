//go:build linux

package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/exithook"
)

// Cores with a flusher, so that the exit work (a worker's, when its function
// returns, or process.Shutdown's) flushes them. A main process that does not
// call Shutdown must Close (or Flush) its queues before it exits (see the
// package documentation).
var pending struct {
	mu    sync.Mutex
	cores map[*core]struct{}
	armed atomic.Bool // flushAtExit is registered: exithook runs a hook once
}

func registerPending(c *core) {
	pending.mu.Lock()
	if pending.cores == nil {
		pending.cores = map[*core]struct{}{}
	}
	pending.cores[c] = struct{}{}
	pending.mu.Unlock()
}

// armExitHook registers flushAtExit unless it is registered already: every
// time a flusher starts, since the exit work (process.Shutdown) may have run
// before and this queue buffers again.
func armExitHook() {
	if pending.armed.Load() {
		return
	}
	pending.mu.Lock()
	if !pending.armed.Load() {
		pending.armed.Store(true)
		exithook.Register(flushAtExit)
	}
	pending.mu.Unlock()
}

func unregisterPending(c *core) {
	pending.mu.Lock()
	delete(pending.cores, c)
	pending.mu.Unlock()
}

// flushAtExit is the exit work: every queue with buffered items flushes
// them while readers make progress. Items that cannot be flushed (no
// process read the queue for its flush timeout) are dropped and counted in
// an error matching ErrNotFlushed, which fails the worker: its parent's
// Join returns it.
func flushAtExit() error {
	pending.mu.Lock()
	pending.armed.Store(false)
	cores := make([]*core, 0, len(pending.cores))
	for c := range pending.cores {
		cores = append(cores, c)
	}
	pending.mu.Unlock()
	var errs []error
	for _, c := range cores {
		if !c.enter() {
			continue // closed: Close reported its own loss
		}
		if n := c.flushOrDrop(); n > 0 {
			errs = append(errs, fmt.Errorf("queue: %d items put by process %d were never written to its %s: no process read the queue for %v (see WithFlushTimeout): %w",
				n, os.Getpid(), c.kind, c.opts.flushTimeout, ErrNotFlushed))
		}
		c.leave()
	}
	return errors.Join(errs...)
}

// flushOrDrop waits for the buffered items to reach the pipe (and for a
// large item to be taken) as long as readers make progress. After
// flushTimeout without progress it gives up: it drops what is left, settles
// its counts, and returns how many items it dropped.
func (c *core) flushOrDrop() int {
	c.dropMu.Lock() // the exit work and Close may run at once
	defer c.dropMu.Unlock()
	if err := c.flush(context.Background(), c.opts.flushTimeout); err == nil {
		return 0
	}
	c.abandon.Store(true)
	c.smu.Lock()
	for c.flushing {
		c.smu.Unlock()
		time.Sleep(time.Millisecond)
		c.smu.Lock()
	}
	n := len(c.outbox)
	for i := range c.outbox {
		if sp := c.outbox[i].sp; sp != nil {
			sp.done <- errAbandoned
		}
	}
	c.outbox, c.arena = nil, nil
	c.pendingOut.Store(0)
	c.pendingBytes.Store(0)
	c.abandon.Store(false)
	c.smu.Unlock()
	c.wakeRoom()
	if n > 0 {
		if s := c.slot.Load(); s != nil {
			s.putPend.Add(-int64(n))
		}
		c.applyLoss(int64(n), 0, 0)
	}
	return n
}

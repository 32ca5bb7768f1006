// Package exithook runs clean-up work when a worker's function has returned,
// before the worker process exits: queues flush what they buffered, the
// worker's own children are joined. The process package runs the hooks;
// other packages register them.
package exithook

import "sync"

var (
	mu    sync.Mutex
	hooks []func()
)

// Register adds f to the hooks. Hooks run in reverse order of registration,
// once each.
func Register(f func()) {
	mu.Lock()
	hooks = append(hooks, f)
	mu.Unlock()
}

// Run runs and forgets every registered hook.
func Run() {
	mu.Lock()
	hs := hooks
	hooks = nil
	mu.Unlock()
	for i := len(hs) - 1; i >= 0; i-- {
		hs[i]()
	}
}

//go:build linux

// Package exithook runs clean-up work when a worker's function has returned,
// before the worker process exits (and in a main process's
// process.Shutdown): queues flush what they buffered, the worker's own
// children are joined. The process package runs the hooks; other packages
// register them. A hook's error makes the worker fail: the parent's Join
// gets it.
//
// It also lets errors.Is work across the process boundary: a package
// registers its sentinel errors under a code with [Sentinel]; the child
// sends the codes an error matches ([Codes]) with its text, and the parent
// maps them back ([Sentinels]). Both sides are the same binary, so they
// register the same codes.
package exithook

import (
	"errors"
	"sort"
	"sync"
)

var (
	mu    sync.Mutex
	hooks []func() error
)

// Register adds f to the hooks. Hooks run in reverse order of registration,
// once each: a package whose work can come back registers again.
func Register(f func() error) {
	mu.Lock()
	hooks = append(hooks, f)
	mu.Unlock()
}

// Run runs and forgets every registered hook, and returns their errors
// joined (nil when every hook returned nil).
func Run() error {
	mu.Lock()
	hs := hooks
	hooks = nil
	mu.Unlock()
	var errs []error
	for i := len(hs) - 1; i >= 0; i-- {
		if err := hs[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	smu       sync.Mutex
	sentinels = map[string]error{}
)

// Sentinel registers err under code (a name unique in the program, such as
// "queue.ErrNotFlushed"), at package initialization.
func Sentinel(code string, err error) {
	smu.Lock()
	sentinels[code] = err
	smu.Unlock()
}

// Codes returns the codes of the registered sentinels that err matches
// (errors.Is), for sending to the parent with err's text.
func Codes(err error) []string {
	if err == nil {
		return nil
	}
	smu.Lock()
	defer smu.Unlock()
	var codes []string
	for code, s := range sentinels {
		if errors.Is(err, s) {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	return codes
}

// Sentinels maps codes received from a child back to the sentinel errors;
// unknown codes are skipped.
func Sentinels(codes []string) []error {
	smu.Lock()
	defer smu.Unlock()
	var errs []error
	for _, code := range codes {
		if s, ok := sentinels[code]; ok {
			errs = append(errs, s)
		}
	}
	return errs
}

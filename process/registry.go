//go:build linux

package process

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/mpgo/multiprocessing/internal/runfunc"
	"github.com/mpgo/multiprocessing/internal/wire"
)

// Func is a function registered with Register, runnable in a child process
// with an argument of type A.
type Func[A any] struct {
	name string
}

// Name returns the name the function was registered under.
func (f Func[A]) Name() string { return f.name }

type entry struct {
	// run decodes the argument and calls the function.
	run func(ctx context.Context, arg []byte, files *wire.Files) error
	// late marks a function registered after Init returned: workers,
	// which run Init (and their function) before main goes on, lack it.
	late bool
}

var (
	regMu    sync.RWMutex
	registry = map[string]entry{}
)

// Register makes fn runnable in child processes under name and returns the
// handle New takes. Call it at package level (var f = process.Register(...))
// or from an init function, so that the parent and every child, which are
// the same binary, build the same table before main runs. A function
// registered after Init (inside main) cannot run in a child: Start refuses
// it with an error saying so.
//
// Register panics on an empty name, a name with whitespace, or a name
// registered twice: these are programming errors, found at start-up.
func Register[A any](name string, fn func(ctx context.Context, arg A) error) Func[A] {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		panic(fmt.Sprintf("process: invalid function name %q", name))
	}
	if fn == nil {
		panic(fmt.Sprintf("process: nil function registered as %q", name))
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("process: function %q registered twice", name))
	}
	registry[name] = entry{late: initialized.Load(), run: func(ctx context.Context, b []byte, files *wire.Files) error {
		var a A
		if err := wire.Unmarshal(b, files, &a); err != nil {
			return &argError{err}
		}
		return fn(ctx, a)
	}}
	return Func[A]{name: name}
}

func lookup(name string) (entry, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	e, ok := registry[name]
	return e, ok
}

// argError marks a failure to decode the argument in the child.
type argError struct{ err error }

func (e *argError) Error() string { return "process: cannot decode the argument: " + e.err.Error() }
func (e *argError) Unwrap() error { return e.err }

// The pool package runs a worker's initializer (a Func) in the worker
// process itself; it reaches the registry through internal/runfunc.
func init() {
	runfunc.Call = func(ctx context.Context, name string, arg []byte, files *wire.Files) error {
		e, ok := lookup(name)
		if !ok {
			return fmt.Errorf("process: no function registered as %q in this binary: register it at package level so every process has it", name)
		}
		return call(ctx, e, arg, files)
	}
}

//go:build linux

// Package runfunc lets the module's packages run a function registered with
// process.Register inside the current process. The pool package needs it to
// run a worker's Initializer (a process.Func) in the worker itself, where
// the registry is private to package process. Package process sets Call in
// an init function; nothing else writes it.
package runfunc

import (
	"context"

	"github.com/mpgo/multiprocessing/internal/wire"
)

// Call runs the function registered under name with the msgpack-encoded
// argument arg, whose handles take their descriptors from files (nil when
// none travelled). A panic in the function is returned as an error carrying
// the panic value and the stack.
var Call func(ctx context.Context, name string, arg []byte, files *wire.Files) error

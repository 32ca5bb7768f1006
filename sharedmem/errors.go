//go:build linux

package sharedmem

import "errors"

var (
	// ErrExist is returned by Create when a block of that name exists. The
	// error also matches fs.ErrExist.
	ErrExist = errors.New("sharedmem: block already exists")

	// ErrNotExist is returned by Open and Unlink when no block has that
	// name. The error also matches fs.ErrNotExist.
	ErrNotExist = errors.New("sharedmem: no such block")

	// ErrSize reports a bad size: not positive, too large for this system,
	// not a multiple of the element size of a typed view, or a received
	// block smaller than its handle says.
	ErrSize = errors.New("sharedmem: bad size")

	// ErrClosed is returned when a closed Memory, Array or Value is used or
	// passed to another process. The methods that return no error (Value's
	// Load, Store, Add, CompareAndSwap) panic with it instead.
	ErrClosed = errors.New("sharedmem: closed")
)

//go:build linux

package driver

import (
	"context"
	"errors"
)

// A Chunk is a run of consecutive items of one call (Map, Imap, Apply...),
// arguments encoded.
type Chunk struct {
	Task  string // the registered task name (pool.Register)
	Start int    // index, in the call, of the chunk's first item
	Count int    // number of items
	// Args holds Count msgpack values, one after another, each the item's
	// argument. It belongs to the pool: valid until Run returns.
	Args []byte
	// StopOnError is Map's rule: once an item fails, the chunk's later
	// items that have not started are not run (their Err is ErrSkipped).
	StopOnError bool
}

// Result is the outcome of one item.
type Result struct {
	Index int // index in the call (Chunk.Start + position)
	// Value is the result, msgpack-encoded, when Err is nil. It is valid
	// only during the deliver call.
	Value []byte
	// Err is the item's error: a *pool.TaskError, a *pool.WorkerDiedError,
	// one matching pool.ErrTimeout or pool.ErrTerminated, ErrSkipped, or
	// the backend's own (for example the cluster's ErrLost).
	Err error
}

// ErrSkipped is the Err of an item a StopOnError chunk did not run because
// an earlier item failed.
var ErrSkipped = errors.New("pool: not run: an earlier item of its map failed")

// A Runner runs chunks. Its methods are safe for concurrent use; the pool
// calls Run from many goroutines at once.
type Runner interface {
	// Workers is how many items the backend runs at once now (>= 1); the
	// pool uses it for the default chunk size (four chunks per worker, as
	// Python) and to bound the chunks it keeps in Run.
	Workers() int
	// Run runs the chunk's items and calls deliver once per item as its
	// result arrives, in any order, from any goroutine, concurrently or
	// not, and never after Run returned; then it returns nil. deliver
	// returns false if the pool already had a result for that index (a
	// duplicate: the backend may count it). If ctx ends, Run stops the
	// chunk's items that have not started, cancels the ctx of running
	// ones, and returns ctx.Err(); if the backend fails, Run returns that
	// error. In both cases the pool fails the items not yet delivered with
	// the returned error.
	Run(ctx context.Context, c Chunk, deliver func(Result) bool) error
	// Close: no new chunks; those running finish. Idempotent.
	Close() error
	// Terminate: stop now; running items end with pool.ErrTerminated (the
	// pool fails what was not delivered). Idempotent.
	Terminate() error
}

// A Pipeliner is a Runner whose chunks spend much of their time in transit
// (a backend across a network): the pool keeps up to InFlight() chunks in
// Run at once, instead of four per worker, so that a stream of small
// calls (ApplyAsync) is not held to four round trips per worker.
// Implementing it is optional.
type Pipeliner interface {
	Runner
	// InFlight is how many chunks the pool may keep in Run at once (>= 1).
	InFlight() int
}

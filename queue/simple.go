//go:build linux

package queue

import "context"

// Simple is an unbounded queue without counters or buffering (Python's
// SimpleQueue): Put writes the item before it returns, waiting for room in
// the pipe if need be.
type Simple[T any] struct {
	c *core
}

// NewSimple returns a simple queue.
func NewSimple[T any]() (*Simple[T], error) {
	c, err := newCore(kindSimple, 0, nil)
	if err != nil {
		return nil, err
	}
	return &Simple[T]{c: c}, nil
}

// Put adds v, waiting until it is in the pipe. A value that cannot be
// encoded is an error and nothing is added; when ctx ends first, Put
// returns ctx's error and nothing is added.
func (q *Simple[T]) Put(ctx context.Context, v T) error {
	pkt, large, buf, err := q.c.encode(v)
	if err != nil {
		return err
	}
	return q.c.put(ctx, pkt, buf, large, true)
}

// Get removes and returns the oldest item, waiting until ctx ends (then the
// queue is unchanged). An item that does not decode into T is taken all the
// same and reported as an error.
func (q *Simple[T]) Get(ctx context.Context) (T, error) {
	var v T
	err := q.c.get(ctx, true, decodeInto(&v))
	return v, err
}

// Empty reports whether no item is waiting.
func (q *Simple[T]) Empty() bool {
	if !q.c.enter() {
		return true
	}
	defer q.c.leave()
	return !q.c.readable()
}

// Close releases this process's descriptors and mapping; operations in this
// process then return ErrClosed. A second Close is a no-op.
func (q *Simple[T]) Close() error { return q.c.close() }

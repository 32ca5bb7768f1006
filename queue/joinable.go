//go:build linux

package queue

import (
	"context"
)

// Joinable is a Queue that also counts unfinished tasks (Python's
// JoinableQueue): every item put is a task, and a consumer marks it done
// with TaskDone once it has processed the item; Join waits until every task
// is done.
type Joinable[T any] struct {
	Queue[T]
}

// NewJoinable returns a joinable queue that holds at most maxsize items
// (maxsize <= 0: unbounded).
func NewJoinable[T any](maxsize int, opts ...Option) (*Joinable[T], error) {
	c, err := newCore(kindJoinable, maxsize, opts)
	if err != nil {
		return nil, err
	}
	return &Joinable[T]{Queue[T]{c: c}}, nil
}

// TaskDone marks one task done: one of the items taken with Get, by this
// or any other process. It returns ErrTaskDone when called more times than
// items were taken.
func (q *Joinable[T]) TaskDone() error {
	if !q.c.enter() {
		return ErrClosed
	}
	defer q.c.leave()
	s, err := q.c.ownSlot()
	if err != nil {
		return err
	}
	return q.c.taskDone(s)
}

// Join waits until every item put has been marked done, or ctx ends (ctx's
// error). Tasks lost with a process that died (a consumer killed before its
// TaskDone, a producer killed before its item reached the pipe) are counted
// as done when another process notices the death, so that Join returns;
// it then returns an error matching ErrTaskLost.
func (q *Joinable[T]) Join(ctx context.Context) error {
	if !q.c.enter() {
		return ErrClosed
	}
	defer q.c.leave()
	return q.c.join(ctx)
}

//go:build linux

package cluster

import (
	"context"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/wire"
)

// Put adds v to the queue. A value that cannot be encoded, or whose
// encoding exceeds the server's payload limit (max_payload, 1 MiB by
// default), is an error matching queue.ErrTooLarge and nothing is added.
//
// On an unbounded queue Put sends the item and returns; the server confirms
// it later, and Flush and Close wait for that (a failed item is reported by
// them or by the next Put). Items of one handle are stored in the order
// they were put. On a bounded queue Put returns once the item is stored,
// and waits while the queue holds MaxSize items; ctx ends the wait with
// ctx's error and nothing added.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	b, err := q.w.encode(v)
	if err != nil {
		return err
	}
	return q.w.put(ctx, b, true)
}

// TryPut adds v without waiting: queue.ErrFull when a bounded queue holds
// MaxSize items.
func (q *Queue[T]) TryPut(v T) error {
	b, err := q.w.encode(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	return q.w.put(ctx, b, false)
}

// Get removes the oldest item and returns it, waiting for one until ctx
// ends (ctx's error, nothing taken). The item is removed on the server
// before Get returns: no other Get, in any process, returns it.
//
// To go fast, a Get that finds several items waiting, in a handle whose
// Gets follow each other within milliseconds, takes up to 64 of them; the
// next Gets return those. Close gives back the ones not returned (at the
// end of the queue); a process killed while holding them loses them, as a
// process killed holding an item of a local queue loses it. A Joinable
// takes one item at a time.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	var v T
	b, err := q.w.get(ctx, true)
	if err != nil {
		return v, err
	}
	return v, q.decode(b, &v)
}

// TryGet removes and returns the oldest item without waiting:
// queue.ErrEmpty when there is none.
func (q *Queue[T]) TryGet() (T, error) {
	var v T
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	b, err := q.w.get(ctx, false)
	if err != nil {
		return v, err
	}
	return v, q.decode(b, &v)
}

func (q *Queue[T]) decode(b []byte, v *T) error {
	if err := wire.Unmarshal(b, nil, v); err != nil {
		return fmt.Errorf("cluster: get %s: %w", q.w.name, err)
	}
	return nil
}

// Len returns the number of items waiting to be taken (Python's qsize),
// asking the server: items held by consumers are not counted, and 0 is
// returned when the server cannot be asked.
func (q *Queue[T]) Len() int { return q.w.length() }

// Empty reports whether Len is 0.
func (q *Queue[T]) Empty() bool { return q.w.length() == 0 }

// Full reports whether a bounded queue holds MaxSize items (taken but not
// done items of a Joinable count: they are still in the queue).
func (q *Queue[T]) Full() bool { return q.w.full() }

// Flush waits until the server has stored every item this handle put, or
// ctx ends. It returns an error with the count of items that failed.
func (q *Queue[T]) Flush(ctx context.Context) error { return q.w.flush(ctx) }

// Close flushes, gives back the items this handle took ahead of Get, and
// ends this handle (queue.ErrClosed from then on, a blocked Get included).
// The queue and its items stay on the server for other handles and
// processes. On a Joinable, items taken and not marked done go back to the
// queue at once. Close is idempotent.
func (q *Queue[T]) Close() error { return q.w.close() }

// TaskDone marks done the oldest item this handle took and has not marked
// done, and returns once the server has removed it. It returns
// queue.ErrTaskDone when this handle holds no such item (unlike a local
// Joinable, where any process may mark any taken item done).
func (q *Joinable[T]) TaskDone() error {
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	return q.w.taskDone(ctx)
}

// Join waits until every item put to the queue, by any process, has been
// marked done, or ctx ends (ctx's error). An item delivered MaxDeliver
// times without TaskDone (its consumers died or were cut off each time) is
// dropped from the queue so that Join returns; Join then returns an error
// matching ErrLost that says how many, once per handle for each such item.
func (q *Joinable[T]) Join(ctx context.Context) error { return q.w.join(ctx) }

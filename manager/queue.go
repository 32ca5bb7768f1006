//go:build linux

package manager

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Queue is a proxy to a FIFO queue held by the server, Python's
// manager.Queue(): the queue package's method set, each method taking
// ctx. Unlike the queue package's pipes, it works across machines (a
// remote manager) and an item is in the queue as soon as Put returns.
type Queue[T any] struct{ p *proxy }

// NewQueue creates a queue holding at most maxsize items (0: unbounded),
// or with Named finds one (then maxsize is ignored).
func NewQueue[T any](ctx context.Context, m *Manager, maxsize int, opts ...ObjectOption) (*Queue[T], error) {
	p, err := newQueue(ctx, m, kindQueue, maxsize, opts)
	if err != nil {
		return nil, err
	}
	return &Queue[T]{p}, nil
}

func newQueue(ctx context.Context, m *Manager, k kind, maxsize int, opts []ObjectOption) (*proxy, error) {
	if maxsize < 0 {
		return nil, fmt.Errorf("manager: new %s: maxsize %d < 0", k, maxsize)
	}
	return m.create(ctx, k, opts, "", values(maxsize))
}

// Put adds v, waiting while a bounded queue is full. It returns ctx's
// error if ctx ends first; v was then not added.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	return noResult(q.p.call(ctx, opPut, 1, blocking, values(v)))
}

// TryPut adds v if there is room, else returns ErrFull.
func (q *Queue[T]) TryPut(ctx context.Context, v T) error {
	return noResult(q.p.call(ctx, opTryPut, 1, plain, values(v)))
}

// Get removes and returns the oldest item, waiting while the queue is
// empty. It returns ctx's error if ctx ends first; no item was then taken.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	rep, cl, err := q.p.call(ctx, opGet, 0, blocking, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// TryGet removes and returns the oldest item, or returns ErrEmpty.
func (q *Queue[T]) TryGet(ctx context.Context) (T, error) {
	rep, cl, err := q.p.call(ctx, opTryGet, 0, plain, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// Len returns the number of items queued (exact at the moment the server
// answered).
func (q *Queue[T]) Len(ctx context.Context) (int, error) {
	rep, _, err := q.p.call(ctx, opLen, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Empty reports whether the queue is empty.
func (q *Queue[T]) Empty(ctx context.Context) (bool, error) {
	rep, _, err := q.p.call(ctx, opEmpty, 0, plain, nil)
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Full reports whether a bounded queue is full.
func (q *Queue[T]) Full(ctx context.Context) (bool, error) {
	rep, _, err := q.p.call(ctx, opFull, 0, plain, nil)
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Close drops this proxy's reference; its methods then return ErrClosed.
// Other proxies of the queue are unaffected. Idempotent.
func (q *Queue[T]) Close() error { return q.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (q *Queue[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return q.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (q *Queue[T]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	q.p, err = decodeProxy(dec, kindQueue)
	return err
}

// Joinable is a Queue whose consumers report each item done, Python's
// manager.JoinableQueue().
type Joinable[T any] struct{ Queue[T] }

// NewJoinable creates a joinable queue (see NewQueue).
func NewJoinable[T any](ctx context.Context, m *Manager, maxsize int, opts ...ObjectOption) (*Joinable[T], error) {
	p, err := newQueue(ctx, m, kindJoinable, maxsize, opts)
	if err != nil {
		return nil, err
	}
	return &Joinable[T]{Queue[T]{p}}, nil
}

// TaskDone marks one item taken by Get as processed. ErrTaskDone when
// called more often than items were put.
func (q *Joinable[T]) TaskDone(ctx context.Context) error {
	return noResult(q.p.call(ctx, opTaskDone, 0, plain, nil))
}

// Join waits until every item put has been marked done. It returns ctx's
// error if ctx ends first.
func (q *Joinable[T]) Join(ctx context.Context) error {
	return noResult(q.p.call(ctx, opJoin, 0, blocking, nil))
}

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (q *Joinable[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return q.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (q *Joinable[T]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	q.p, err = decodeProxy(dec, kindJoinable)
	return err
}

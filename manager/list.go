//go:build linux

package manager

import (
	"context"

	"github.com/vmihailenco/msgpack/v5"
)

// List is a proxy to a shared list, Python's managers.ListProxy. Indexes
// count from the end when negative, as in Python; Remove and Index compare
// values by their msgpack encoding.
type List[T any] struct{ p *proxy }

// NewList creates an empty shared list (or, with Named, finds one).
func NewList[T any](ctx context.Context, m *Manager, opts ...ObjectOption) (*List[T], error) {
	p, err := m.create(ctx, kindList, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &List[T]{p}, nil
}

// Append adds v at the end.
func (l *List[T]) Append(ctx context.Context, v T) error {
	return noResult(l.p.call(ctx, opAppend, 1, plain, values(v)))
}

// Extend adds vs at the end, atomically.
func (l *List[T]) Extend(ctx context.Context, vs []T) error {
	return noResult(l.p.call(ctx, opExtend, 1, plain, itemsOf(vs)))
}

// Insert puts v before index i; as in Python, an index past either end
// inserts at that end.
func (l *List[T]) Insert(ctx context.Context, i int, v T) error {
	return noResult(l.p.call(ctx, opInsert, 2, plain, values(i, v)))
}

// Get returns the item at index i (ErrIndex when out of range).
func (l *List[T]) Get(ctx context.Context, i int) (T, error) {
	rep, cl, err := l.p.call(ctx, opGet, 1, plain, values(i))
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// Set replaces the item at index i.
func (l *List[T]) Set(ctx context.Context, i int, v T) error {
	return noResult(l.p.call(ctx, opSet, 2, plain, values(i, v)))
}

// Pop removes and returns the item at index i (-1: the last).
func (l *List[T]) Pop(ctx context.Context, i int) (T, error) {
	rep, cl, err := l.p.call(ctx, opPop, 1, plain, values(i))
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// Remove removes the first item equal to v (ErrNotFound if none).
func (l *List[T]) Remove(ctx context.Context, v T) error {
	return noResult(l.p.call(ctx, opRemove, 1, plain, values(v)))
}

// Index returns the index of the first item equal to v (ErrNotFound if
// none).
func (l *List[T]) Index(ctx context.Context, v T) (int, error) {
	rep, _, err := l.p.call(ctx, opIndex, 1, plain, values(v))
	if err != nil {
		return -1, err
	}
	return decodeInt(rep)
}

// Len returns the number of items.
func (l *List[T]) Len(ctx context.Context) (int, error) {
	rep, _, err := l.p.call(ctx, opLen, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Slice returns a copy of all the items.
func (l *List[T]) Slice(ctx context.Context) ([]T, error) {
	rep, cl, err := l.p.call(ctx, opSlice, 0, plain, nil)
	if err != nil {
		return nil, err
	}
	return decodeSlice[T](cl, rep)
}

// Clear removes every item.
func (l *List[T]) Clear(ctx context.Context) error {
	return noResult(l.p.call(ctx, opClear, 0, plain, nil))
}

// Close drops this proxy's reference; its methods then return ErrClosed.
// Idempotent.
func (l *List[T]) Close() error { return l.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (l *List[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return l.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (l *List[T]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	l.p, err = decodeProxy(dec, kindList)
	return err
}

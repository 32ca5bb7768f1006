//go:build linux

package manager

import (
	"context"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// Value is a proxy to one shared value, Python's managers.Value (without
// the typecode: T is the type).
type Value[T any] struct{ p *proxy }

// NewValue creates a shared value holding v (or, with Named, finds one:
// then v is ignored).
func NewValue[T any](ctx context.Context, m *Manager, v T, opts ...ObjectOption) (*Value[T], error) {
	p, err := m.create(ctx, kindValue, opts, "", values(v))
	if err != nil {
		return nil, err
	}
	return &Value[T]{p}, nil
}

// Get returns the value.
func (x *Value[T]) Get(ctx context.Context) (T, error) {
	rep, cl, err := x.p.call(ctx, opGet, 0, plain, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// Set replaces the value.
func (x *Value[T]) Set(ctx context.Context, v T) error {
	return noResult(x.p.call(ctx, opSet, 1, plain, values(v)))
}

// Add adds delta atomically and returns the new value (see Dict.Add).
func (x *Value[T]) Add(ctx context.Context, delta T) (T, error) {
	rep, cl, err := x.p.call(ctx, opAdd, 2, plain, values(delta, numTypeOf(reflect.TypeFor[T]())))
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// CompareAndSwap replaces the value with new if it encodes to the same
// bytes as old, atomically, and reports whether it did.
func (x *Value[T]) CompareAndSwap(ctx context.Context, old, new T) (bool, error) {
	rep, _, err := x.p.call(ctx, opCAS, 2, plain, values(old, new))
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Close drops this proxy's reference. Idempotent.
func (x *Value[T]) Close() error { return x.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (x *Value[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return x.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (x *Value[T]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	x.p, err = decodeProxy(dec, kindValue)
	return err
}

// Array is a proxy to a shared fixed-length array, Python's
// managers.Array (ArrayProxy).
type Array[T any] struct{ p *proxy }

// NewArray creates a shared array holding a copy of items (or, with
// Named, finds one: then items are ignored). Its length never changes.
func NewArray[T any](ctx context.Context, m *Manager, items []T, opts ...ObjectOption) (*Array[T], error) {
	if items == nil {
		items = []T{}
	}
	p, err := m.create(ctx, kindArray, opts, "", itemsOf(items))
	if err != nil {
		return nil, err
	}
	return &Array[T]{p}, nil
}

// Get returns the item at index i (ErrIndex when out of range).
func (a *Array[T]) Get(ctx context.Context, i int) (T, error) {
	rep, cl, err := a.p.call(ctx, opGet, 1, plain, values(i))
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// Set replaces the item at index i.
func (a *Array[T]) Set(ctx context.Context, i int, v T) error {
	return noResult(a.p.call(ctx, opSet, 2, plain, values(i, v)))
}

// Add adds delta to the item at index i atomically and returns the new
// value (see Dict.Add).
func (a *Array[T]) Add(ctx context.Context, i int, delta T) (T, error) {
	rep, cl, err := a.p.call(ctx, opAdd, 3, plain, values(i, delta, numTypeOf(reflect.TypeFor[T]())))
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](cl, rep)
}

// CompareAndSwap replaces the item at index i with new if it encodes to
// the same bytes as old, atomically, and reports whether it did.
func (a *Array[T]) CompareAndSwap(ctx context.Context, i int, old, new T) (bool, error) {
	rep, _, err := a.p.call(ctx, opCAS, 3, plain, values(i, old, new))
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Len returns the length.
func (a *Array[T]) Len(ctx context.Context) (int, error) {
	rep, _, err := a.p.call(ctx, opLen, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Slice returns a copy of all the items.
func (a *Array[T]) Slice(ctx context.Context) ([]T, error) {
	rep, cl, err := a.p.call(ctx, opSlice, 0, plain, nil)
	if err != nil {
		return nil, err
	}
	return decodeSlice[T](cl, rep)
}

// Close drops this proxy's reference. Idempotent.
func (a *Array[T]) Close() error { return a.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (a *Array[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return a.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (a *Array[T]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	a.p, err = decodeProxy(dec, kindArray)
	return err
}

// Namespace is a proxy to a shared set of named attributes, Python's
// managers.Namespace. Attributes hold values of any type; Get decodes one
// into the caller's variable.
type Namespace struct{ p *proxy }

// NewNamespace creates an empty namespace (or, with Named, finds one).
func NewNamespace(ctx context.Context, m *Manager, opts ...ObjectOption) (*Namespace, error) {
	p, err := m.create(ctx, kindNamespace, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &Namespace{p}, nil
}

// Get decodes attribute name into out, a pointer (ErrNoAttribute if it
// was never set).
func (n *Namespace) Get(ctx context.Context, name string, out any) error {
	rep, cl, err := n.p.call(ctx, opGet, 1, plain, values(name))
	if err != nil {
		return err
	}
	if rep.code == codeMissing {
		return fmt.Errorf("%w: %q", ErrNoAttribute, name)
	}
	err = cl.decodeValue(rep.payload, out)
	cl.settle(rep.grants)
	return err
}

// Set sets attribute name to v.
func (n *Namespace) Set(ctx context.Context, name string, v any) error {
	return noResult(n.p.call(ctx, opSet, 2, plain, values(name, v)))
}

// Delete removes attribute name (ErrNoAttribute if it was never set).
func (n *Namespace) Delete(ctx context.Context, name string) error {
	return noResult(n.p.call(ctx, opDelete, 1, plain, values(name)))
}

// Names returns the attribute names in the order they were first set.
func (n *Namespace) Names(ctx context.Context) ([]string, error) {
	rep, cl, err := n.p.call(ctx, opKeys, 0, plain, nil)
	if err != nil {
		return nil, err
	}
	return decodeAs[[]string](cl, rep)
}

// Close drops this proxy's reference. Idempotent.
func (n *Namespace) Close() error { return n.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder (see Dict.EncodeMsgpack).
func (n *Namespace) EncodeMsgpack(enc *msgpack.Encoder) error { return n.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (n *Namespace) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	n.p, err = decodeProxy(dec, kindNamespace)
	return err
}

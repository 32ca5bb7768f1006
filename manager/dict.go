//go:build linux

package manager

import (
	"context"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// Dict is a proxy to a shared map, Python's managers.DictProxy. Keys and
// values travel as msgpack; the server compares keys (and, for
// CompareAndSwap, values) by their encoded bytes, so use one key type
// everywhere. Every method is one round trip and atomic on the server.
type Dict[K comparable, V any] struct{ p *proxy }

// NewDict creates an empty shared map (or, with Named, finds one).
func NewDict[K comparable, V any](ctx context.Context, m *Manager, opts ...ObjectOption) (*Dict[K, V], error) {
	p, err := m.create(ctx, kindDict, opts, "", nil)
	if err != nil {
		return nil, err
	}
	return &Dict[K, V]{p}, nil
}

// Get returns the value under k and whether it was there.
func (d *Dict[K, V]) Get(ctx context.Context, k K) (V, bool, error) {
	return d.lookup(ctx, opGet, k)
}

// lookup runs Get or Pop: the value under k, and whether it was there.
func (d *Dict[K, V]) lookup(ctx context.Context, o op, k K) (V, bool, error) {
	var zero V
	rep, cl, err := d.p.call(ctx, o, 1, plain, values(k))
	if err != nil {
		return zero, false, err
	}
	if rep.code == codeMissing {
		return zero, false, nil
	}
	v, err := decodeAs[V](cl, rep)
	return v, err == nil, err
}

// Set stores v under k.
func (d *Dict[K, V]) Set(ctx context.Context, k K, v V) error {
	return noResult(d.p.call(ctx, opSet, 2, plain, values(k, v)))
}

// Delete removes k; a missing key is not an error (as Go's delete).
func (d *Dict[K, V]) Delete(ctx context.Context, k K) error {
	return noResult(d.p.call(ctx, opDelete, 1, plain, values(k)))
}

// Len returns the number of keys.
func (d *Dict[K, V]) Len(ctx context.Context) (int, error) {
	rep, _, err := d.p.call(ctx, opLen, 0, plain, nil)
	if err != nil {
		return 0, err
	}
	return decodeInt(rep)
}

// Keys returns the keys in insertion order.
func (d *Dict[K, V]) Keys(ctx context.Context) ([]K, error) {
	rep, cl, err := d.p.call(ctx, opKeys, 0, plain, nil)
	if err != nil {
		return nil, err
	}
	return decodeAs[[]K](cl, rep)
}

// Items returns a copy of the whole map.
func (d *Dict[K, V]) Items(ctx context.Context) (map[K]V, error) {
	rep, cl, err := d.p.call(ctx, opItems, 0, plain, nil)
	if err != nil {
		return nil, err
	}
	return decodeAs[map[K]V](cl, rep)
}

// Update stores every pair of m, atomically.
func (d *Dict[K, V]) Update(ctx context.Context, m map[K]V) error {
	return noResult(d.p.call(ctx, opUpdate, 1, plain, values(m)))
}

// Clear removes every key.
func (d *Dict[K, V]) Clear(ctx context.Context) error {
	return noResult(d.p.call(ctx, opClear, 0, plain, nil))
}

// SetDefault stores v under k if k is missing, and returns the value now
// under k, atomically (Python's dict.setdefault).
func (d *Dict[K, V]) SetDefault(ctx context.Context, k K, v V) (V, error) {
	rep, cl, err := d.p.call(ctx, opSetDefault, 2, plain, values(k, v))
	if err != nil {
		var zero V
		return zero, err
	}
	return decodeAs[V](cl, rep)
}

// Pop removes k and returns its value and whether it was there.
func (d *Dict[K, V]) Pop(ctx context.Context, k K) (V, bool, error) {
	return d.lookup(ctx, opPop, k)
}

// Add adds delta to the number under k, atomically on the server, and
// returns the new value; a missing key starts from zero. This is the
// race-free `d[k] += delta` that Python needs a lock for. Integers add
// exactly, floats in float64 (float32 when V is float32); a sum that does
// not fit V (an int8 past 127, a uint past zero, a float32 past its
// largest value to an infinity) is ErrOverflow and the stored value is
// unchanged (for an interface V: a sum beyond int64 and uint64). A value
// or delta that is not a number is ErrNotNumber.
func (d *Dict[K, V]) Add(ctx context.Context, k K, delta V) (V, error) {
	rep, cl, err := d.p.call(ctx, opAdd, 3, plain, values(k, delta, numTypeOf(reflect.TypeFor[V]())))
	if err != nil {
		var zero V
		return zero, err
	}
	return decodeAs[V](cl, rep)
}

// CompareAndSwap stores new under k if the value there encodes to the same
// bytes as old (a missing key matches the zero V), atomically, and
// reports whether it did.
func (d *Dict[K, V]) CompareAndSwap(ctx context.Context, k K, old, new V) (bool, error) {
	rep, _, err := d.p.call(ctx, opCAS, 4, plain, values(k, old, new, isZero(old)))
	if err != nil {
		return false, err
	}
	return decodeBool(rep)
}

// Close drops this proxy's reference to the dict (see Object lifetime in
// the package documentation); its methods then return ErrClosed. The
// garbage collector does the same for a proxy that is never closed.
// Idempotent.
func (d *Dict[K, V]) Close() error { return d.p.close() }

// EncodeMsgpack implements msgpack.CustomEncoder: a proxy travels as a
// reference to its object, in process arguments, pipes, queues and
// values of other shared objects. Not for direct use.
func (d *Dict[K, V]) EncodeMsgpack(enc *msgpack.Encoder) error { return d.p.encode(enc) }

// DecodeMsgpack implements msgpack.CustomDecoder. Not for direct use.
func (d *Dict[K, V]) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	d.p, err = decodeProxy(dec, kindDict)
	return err
}

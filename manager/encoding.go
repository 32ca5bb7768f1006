//go:build linux

package manager

// How proxy methods encode their arguments and decode their results (the
// Value, Array and Namespace proxies themselves are in value.go).

import (
	"fmt"
	"reflect"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// decodeAs decodes a reply's value as a T and settles the reply's grants
// (after decoding: proxies inside the value are counted first).
func decodeAs[T any](cl *client, rep reply) (T, error) {
	var v T
	err := cl.decodeValue(rep.payload, &v)
	cl.settle(rep.grants)
	return v, err
}

// decodeSlice decodes a reply's array as a []T item by item (a []byte
// decoder wants a msgpack bin, not an array of numbers) and settles the
// reply's grants.
func decodeSlice[T any](cl *client, rep reply) ([]T, error) {
	defer cl.settle(rep.grants)
	if msgp.NextType(rep.payload) == msgp.NilType {
		return nil, nil
	}
	n, pos, err := msgp.ReadArrayHeader(rep.payload)
	if err != nil {
		return nil, fmt.Errorf("manager: bad reply: %w", err)
	}
	out := make([]T, min(n, len(rep.payload)))
	for i := range out {
		k, err := msgp.Len(rep.payload[pos:])
		if err != nil {
			return nil, fmt.Errorf("manager: bad reply: %w", err)
		}
		if err := cl.decodeValue(rep.payload[pos:pos+k], &out[i]); err != nil {
			return nil, err
		}
		pos += k
	}
	return out, nil
}

// decodeInt reads an integer result.
func decodeInt(rep reply) (int, error) {
	n, _, err := msgp.ReadInt(rep.payload)
	if err != nil {
		return 0, fmt.Errorf("manager: bad reply: %w", err)
	}
	return int(n), nil
}

// decodeBool reads a boolean result.
func decodeBool(rep reply) (bool, error) {
	v, _, err := msgp.ReadBool(rep.payload)
	if err != nil {
		return false, fmt.Errorf("manager: bad reply")
	}
	return v, nil
}

// values returns a request builder that encodes vs in order.
func values(vs ...any) func(r *request) error {
	return func(r *request) error {
		for _, v := range vs {
			if err := r.value(v); err != nil {
				return err
			}
		}
		return nil
	}
}

// itemsOf returns a request builder that encodes items as one msgpack
// array, item by item: a []byte would otherwise travel as one msgpack bin,
// not an array of numbers.
func itemsOf[T any](items []T) func(r *request) error {
	return func(r *request) error {
		r.arrayHeader(len(items))
		for _, it := range items {
			if err := r.value(it); err != nil {
				return err
			}
		}
		return nil
	}
}

// isZero reports whether v is its type's zero value (a missing key or an
// unset slot compares equal to it in CompareAndSwap).
func isZero[V any](v V) bool {
	return reflect.ValueOf(&v).Elem().IsZero()
}

// noResult finishes a call that returns nothing.
func noResult(_ reply, _ *client, err error) error { return err }

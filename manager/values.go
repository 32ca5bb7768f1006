package manager

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

// isZero reports whether v is its type's zero value (a missing key or an
// unset slot compares equal to it in CompareAndSwap).
func isZero[V any](v V) bool {
	return reflect.ValueOf(&v).Elem().IsZero()
}

// noResult finishes a call that returns nothing.
func noResult(_ reply, _ *client, err error) error { return err }

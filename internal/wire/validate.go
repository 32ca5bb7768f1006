//go:build linux

package wire

import (
	"errors"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// MaxDepth is the deepest nesting of arrays and maps a decoded value may
// have. The decoder recurses once per level, so peer input must not choose
// the depth.
const MaxDepth = msgp.MaxDepth

// ErrMalformed reports bytes that are not one well-formed msgpack value.
var ErrMalformed = errors.New("wire: malformed msgpack")

// Validate checks that data is exactly one well-formed msgpack value whose
// every length fits in data and whose nesting is at most MaxDepth.
//
// Decoding untrusted input needs this: msgpack's decoder sizes some
// allocations by the lengths the input claims (a 5-byte array header can
// claim four billion elements and exhaust memory before a byte of them is
// read). After Validate, every claimed count is bounded by len(data).
func Validate(data []byte) error {
	n, err := msgp.Len(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(data)-n)
	}
	return nil
}

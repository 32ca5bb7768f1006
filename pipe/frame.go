//go:build linux

package pipe

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Framing, byte-compatible with Python's multiprocessing.connection on POSIX:
// a 4-byte big-endian signed length, then the payload. A payload longer than
// math.MaxInt32 is announced by the length -1 followed by an 8-byte
// big-endian unsigned length. Python's reader accepts the escape at any size;
// so does ours.
const (
	headerLen      = 4
	largeHeaderLen = 12
	escape         = 0xFFFFFFFF
)

// putHeader writes the header for an n-byte payload into b (at least 12 bytes
// long) and returns its length.
func putHeader(b []byte, n int) int {
	if n <= math.MaxInt32 {
		binary.BigEndian.PutUint32(b, uint32(n))
		return headerLen
	}
	binary.BigEndian.PutUint32(b, escape)
	binary.BigEndian.PutUint64(b[4:], uint64(n))
	return largeHeaderLen
}

// parseHeader decodes a header at the start of b. need > 0 means b is too
// short and need bytes of header are required in all; otherwise it returns
// the payload length and the header length. A length that is not
// representable, or a negative one other than the escape, is ErrBadFrame.
func parseHeader(b []byte) (n int64, hlen int, need int, err error) {
	if len(b) < headerLen {
		return 0, 0, headerLen, nil
	}
	v := binary.BigEndian.Uint32(b)
	if v != escape {
		if int32(v) < 0 {
			return 0, 0, 0, fmt.Errorf("%w: negative length %d", ErrBadFrame, int32(v))
		}
		return int64(v), headerLen, 0, nil
	}
	if len(b) < largeHeaderLen {
		return 0, 0, largeHeaderLen, nil
	}
	u := binary.BigEndian.Uint64(b[4:])
	if u > math.MaxInt64 {
		return 0, 0, 0, fmt.Errorf("%w: length %d", ErrBadFrame, u)
	}
	return int64(u), largeHeaderLen, 0, nil
}

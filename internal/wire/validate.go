package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDepth is the deepest nesting of arrays and maps a decoded value may
// have. The decoder recurses once per level, so peer input must not choose
// the depth.
const MaxDepth = 1000

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
	// stack[i] counts the objects still expected at nesting level i.
	stack := make([]int, 1, 16)
	stack[0] = 1
	p := 0
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if p >= len(data) {
			return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, p)
		}
		c := data[p]
		p++
		var skip, children int
		var lenBytes int
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f: // fixmap
			children = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			children = int(c & 0x0f)
		case c <= 0xbf: // fixstr
			skip = int(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3:
			case 0xc4, 0xd9:
				lenBytes = 1
			case 0xc5, 0xda:
				lenBytes = 2
			case 0xc6, 0xdb:
				lenBytes = 4
			case 0xc7:
				lenBytes, skip = 1, 1
			case 0xc8:
				lenBytes, skip = 2, 1
			case 0xc9:
				lenBytes, skip = 4, 1
			case 0xca:
				skip = 4
			case 0xcb:
				skip = 8
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xce, 0xd2:
				skip = 4
			case 0xcf, 0xd3:
				skip = 8
			case 0xd4:
				skip = 2
			case 0xd5:
				skip = 3
			case 0xd6:
				skip = 5
			case 0xd7:
				skip = 9
			case 0xd8:
				skip = 17
			case 0xdc, 0xde:
				n, err := readLen(data, &p, 2)
				if err != nil {
					return err
				}
				children = n
				if c == 0xde {
					children = 2 * n
				}
			case 0xdd, 0xdf:
				n, err := readLen(data, &p, 4)
				if err != nil {
					return err
				}
				children = n
				if c == 0xdf {
					children = 2 * n
				}
			default: // 0xc1 is never used
				return fmt.Errorf("%w: invalid code 0x%02x at byte %d", ErrMalformed, c, p-1)
			}
		}
		if lenBytes > 0 {
			n, err := readLen(data, &p, lenBytes)
			if err != nil {
				return err
			}
			skip += n
		}
		if skip > len(data)-p {
			return fmt.Errorf("%w: %d bytes claimed at byte %d, %d left", ErrMalformed, skip, p, len(data)-p)
		}
		p += skip
		if children > 0 {
			// Every object takes at least one byte.
			if children > len(data)-p {
				return fmt.Errorf("%w: %d elements claimed at byte %d, %d bytes left", ErrMalformed, children, p, len(data)-p)
			}
			if len(stack) >= MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, MaxDepth)
			}
			stack = append(stack, children)
		}
	}
	if p != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(data)-p)
	}
	return nil
}

func readLen(data []byte, p *int, size int) (int, error) {
	if len(data)-*p < size {
		return 0, fmt.Errorf("%w: truncated length at byte %d", ErrMalformed, *p)
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(data[*p])
	case 2:
		n = uint64(binary.BigEndian.Uint16(data[*p:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(data[*p:]))
	}
	*p += size
	if n > uint64(len(data)) {
		return 0, fmt.Errorf("%w: length %d at byte %d exceeds the %d-byte input", ErrMalformed, n, *p-size, len(data))
	}
	return int(n), nil
}

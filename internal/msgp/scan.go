//go:build linux

package msgp

// A Visitor is told about the parts of a value [Walk] steps over that its
// caller cares about. A nil hook is skipped. A hook that returns an error
// stops the walk, and Walk returns that error as it is.
type Visitor struct {
	// Ext is called with the type and data of every extension.
	Ext func(typ int8, data []byte) error
	// Map is called with the pair count of every map, before its pairs
	// are walked.
	Map func(pairs int) error
}

// Len returns the length of the msgpack value at the start of b. Every
// length and count the value claims is checked against the bytes of b,
// and its non-empty arrays and maps may nest at most [MaxDepth] deep; a
// value that breaks either rule, or holds the code 0xc1, is an error
// (wrapping [ErrShort], [ErrDepth] or [ErrInvalid]) and the length is 0.
// Len never reads past the value.
func Len(b []byte) (int, error) {
	return Walk(b, nil)
}

// Walk is [Len] that calls v's hooks (v may be nil) for the extensions and
// maps of the value, in the order they are met.
//
// It does not recurse: msgpack gives the element count of a container up
// front, so a stack of counts still to read, one per open container, is
// all a walk needs.
func Walk(b []byte, v *Visitor) (int, error) {
	var buf [16]int
	open := buf[:0] // what is left of each enclosing container
	left := 1       // values still to read in the innermost one
	// pending counts the values still to read at every level, this one
	// included. Each takes a byte at least, so pending never exceeds the
	// bytes left: a count that would make it do so cannot be honest, and
	// is refused before anything relies on it.
	pending := 1
	p := 0
	for {
		for left == 0 {
			if len(open) == 0 {
				return p, nil
			}
			left = open[len(open)-1]
			open = open[:len(open)-1]
		}
		left--
		pending--
		if p >= len(b) {
			return 0, ErrShort
		}
		// The fix forms, which most values use, are told apart by a switch
		// rather than a lookup in layouts: its branches predict well,
		// where a table puts a dependent load on every step.
		c := b[p]
		p++
		if c == 0xcb && p+8 <= len(b) {
			// A float64, and the float64s that follow it in its container
			// (a []float64 is all of them) in one loop: a step each.
			p += 8
			for left > 0 && p+9 <= len(b) && b[p] == 0xcb {
				p += 9
				left--
				pending--
			}
			continue
		}
		var t Type
		var n int // a container's count (of pairs, for a map); else the bytes to step over
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
			continue
		case c >= 0xa0 && c <= 0xbf:
			t, n = StrType, int(c&0x1f)
		case c <= 0x8f:
			t, n = MapType, int(c&0x0f)
		case c <= 0x9f:
			t, n = ArrayType, int(c&0x0f)
		default:
			l := layouts[c]
			t, n = l.typ, int(l.n)
			if l.lenSize != 0 {
				var m int
				var err error
				if m, p, err = l.count(b, p); err != nil {
					return 0, err
				}
				if t == ArrayType || t == MapType {
					n = m
				} else {
					n += m
				}
			}
		}
		switch t {
		case ArrayType, MapType:
			children := n
			if t == MapType {
				children *= 2
			}
			if children > len(b)-p-pending {
				return 0, ErrShort
			}
			if t == MapType && v != nil && v.Map != nil {
				if err := v.Map(n); err != nil {
					return 0, err
				}
			}
			if children == 0 {
				continue
			}
			if len(open) == MaxDepth {
				return 0, ErrDepth
			}
			open = append(open, left)
			left = children
			pending += children
			continue
		case InvalidType:
			return 0, ErrInvalid
		}
		if n > len(b)-p {
			return 0, ErrShort
		}
		if t == ExtType && v != nil && v.Ext != nil {
			// n counts the type byte: an ext always has one.
			if err := v.Ext(int8(b[p]), b[p+1:p+n]); err != nil {
				return 0, err
			}
		}
		p += n
	}
}

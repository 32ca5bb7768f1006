//go:build linux

package wire

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/vmihailenco/msgpack/v5"
)

// The decode budget. A message is small and what it decodes into may be
// large: an empty map is one byte of msgpack and a Go map header of 48
// bytes, a map of one small pair three bytes and some 350 bytes of Go map.
// Before decoding, Check estimates from the message and the receiving type
// what decoding will allocate (an upper bound, see the cost constants) and
// refuses a message that would take more than
//
//	BudgetPerByte × len(message) + BudgetBase
//
// bytes. Records of a few fields, lists of numbers or strings, and any
// typed value whose Go types are not much larger than their encoding stay
// far below it; what it refuses is a large message made mostly of tiny
// containers (a 16 MiB list of empty maps would take about 1 GiB of maps).
const (
	BudgetPerByte = 32
	BudgetBase    = 64 << 20
)

// ErrBudget reports a message that would decode into more memory than the
// decode budget allows.
var ErrBudget = errors.New("wire: message would decode into too much memory")

// Costs, in bytes of Go memory, of the parts of a decoded value. They are
// upper bounds of what the runtime allocates for each (its size classes
// included), checked by TestDecodeCostBound.
const (
	costSlot     = 16  // an interface value in a []any or a map[string]any
	costBox      = 8   // a boxed int64 or float64
	costSlice    = 24  // a boxed slice header
	costMap      = 64  // a map's header
	costGroup    = 8   // a map group's control word; its 8 slots are added by type
	groupEntries = 7   // entries per group at the map's maximum load
	rounding     = 1.3 // size-class rounding of byte data
	sizeClass    = 1.125
	costMinBlock = 16 // the smallest block bytes get (without the tiny allocator, as under -race)
)

// Check checks that data, one well-formed msgpack value (see Validate), is
// fit to be decoded into a value of type t: every struct it fills gets at
// least one of its fields from it (a map of which no key names a field of
// a struct with fields is an error: a different struct type was sent), and
// decoding stays within the decode budget.
func Check(data []byte, t reflect.Type) error {
	c := checker{b: data}
	if _, err := c.value(0, t, 0); err != nil {
		return err
	}
	if limit := float64(BudgetPerByte)*float64(len(data)) + BudgetBase; c.cost > limit {
		return fmt.Errorf("%w: a %d-byte message would take about %.0f MB to decode into %s, over the limit of %d bytes per message byte plus %d MiB; decode into a typed value (a struct or slice of structs) rather than any, or send it in parts",
			ErrBudget, len(data), c.cost/1e6, t, BudgetPerByte, BudgetBase>>20)
	}
	return nil
}

type checker struct {
	b    []byte
	cost float64
}

// value checks the value at b[p:] against type t and returns the position
// after it. A value that does not fit t is stepped over: the decoder
// reports it.
func (c *checker) value(p int, t reflect.Type, depth int) (int, error) {
	b := c.b
	if depth > maxEncodeSteps {
		return 0, ErrTooDeep
	}
	if msgp.NextType(b[p:]) == msgp.NilType {
		return p + 1, nil
	}
	if t == nil || customDecoded(t) {
		return c.skip(p)
	}
	switch t.Kind() {
	case reflect.Interface:
		return c.dynamic(p, costSlot)
	case reflect.Pointer:
		c.cost += float64(t.Elem().Size())
		return c.value(p, t.Elem(), depth+1)
	case reflect.String:
		return c.skip(p)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return c.skip(p)
		}
		n, h, err := msgp.ReadArrayHeader(b[p:])
		if err != nil {
			return c.skip(p)
		}
		if t.Kind() == reflect.Slice {
			c.cost += float64(n) * float64(t.Elem().Size()) * sizeClass
		}
		p += h
		for range n {
			if p, err = c.value(p, t.Elem(), depth+1); err != nil {
				return 0, err
			}
		}
		return p, nil
	case reflect.Map:
		n, h, err := msgp.ReadMapHeader(b[p:])
		if err != nil {
			return c.skip(p)
		}
		c.mapCost(n, t.Key().Size()+t.Elem().Size())
		p += h
		for range n {
			if p, err = c.value(p, t.Key(), depth+1); err != nil {
				return 0, err
			}
			if p, err = c.value(p, t.Elem(), depth+1); err != nil {
				return 0, err
			}
		}
		return p, nil
	case reflect.Struct:
		return c.structValue(p, t, depth)
	}
	return c.skip(p)
}

func (c *checker) mapCost(pairs int, entry uintptr) {
	c.cost += costMap
	if pairs > 0 {
		groups := (pairs + groupEntries - 1) / groupEntries
		c.cost += float64(groups) * (costGroup + 8*float64(entry)) * sizeClass
	}
}

// skip steps over the value at p, counting its bytes (a string or []byte
// copies them; a custom decoder is taken to allocate about as much).
func (c *checker) skip(p int) (int, error) {
	n, err := msgp.Len(c.b[p:])
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c.cost += float64(n) * rounding
	return p + n, nil
}

// structValue checks a struct's map against its fields.
func (c *checker) structValue(p int, t reflect.Type, depth int) (int, error) {
	b := c.b
	n, h, err := msgp.ReadMapHeader(b[p:])
	if err != nil {
		return c.skip(p) // as_array, or not a struct at all
	}
	fields := fieldsOf(t)
	q := p + h
	matched := false
	for range n {
		key, k, err := msgp.ReadBytes(b[q:])
		if err != nil {
			return c.skip(p)
		}
		q += k
		f, ok := fields.byName[string(key)]
		matched = matched || ok
		if q, err = c.value(q, f, depth+1); err != nil {
			return 0, err
		}
	}
	if !matched && n > 0 && len(fields.byName) > 0 {
		return 0, &DecodeError{Value: describeKeys(b[p:]), Type: t,
			Hint: fmt.Sprintf("no key names a field of it (%s): a different struct type was sent; receive into the type that is sent", strings.Join(fields.names, ", "))}
	}
	return q, nil
}

// describeKeys describes the map at the start of b by its first keys.
func describeKeys(b []byte) string {
	n, p, _ := msgp.ReadMapHeader(b)
	var keys []string
	for i := 0; i < n && i < 4; i++ {
		k, m, err := msgp.ReadBytes(b[p:])
		if err != nil {
			break
		}
		keys = append(keys, fmt.Sprintf("%q", k))
		p += m
		m, err = msgp.Len(b[p:])
		if err != nil {
			break
		}
		p += m
	}
	if n > len(keys) {
		keys = append(keys, "...")
	}
	return fmt.Sprintf("a map with keys %s", strings.Join(keys, ", "))
}

// dynamic steps over the value at p, adding what decoding it into an
// interface allocates; slot is the cost of the place that holds it.
func (c *checker) dynamic(p int, slot float64) (int, error) {
	b := c.b
	c.cost += slot
	switch msgp.NextType(b[p:]) {
	case msgp.NilType, msgp.BoolType:
		return p + 1, nil
	case msgp.UintType:
		if b[p] <= 0x7f {
			return p + 1, nil // small ints are boxed without allocating
		}
		c.cost += costBox
		return c.skipBare(p)
	case msgp.IntType, msgp.Float32Type, msgp.Float64Type:
		c.cost += costBox
		return c.skipBare(p)
	case msgp.StrType, msgp.BinType:
		// A header (boxed), and the bytes in a block of their own; an
		// empty string is boxed without allocating.
		data, n, err := msgp.ReadBytes(b[p:])
		if err != nil {
			return c.skip(p)
		}
		if len(data) > 0 || b[p] >= 0xc4 && b[p] <= 0xc6 {
			c.cost += costSlice + max(float64(len(data))*rounding, costMinBlock)
		}
		return p + n, nil
	case msgp.ArrayType:
		n, h, err := msgp.ReadArrayHeader(b[p:])
		if err != nil {
			return c.skip(p)
		}
		p += h
		if n > 0 {
			c.cost += costSlice + float64(n)*costSlot*sizeClass
		}
		for range n {
			if p, err = c.dynamic(p, 0); err != nil {
				return 0, err
			}
		}
		return p, nil
	case msgp.MapType:
		n, h, err := msgp.ReadMapHeader(b[p:])
		if err != nil {
			return c.skip(p)
		}
		c.mapCost(n, 2*costSlot)
		p += h
		for range n {
			// A string key's header is in the map's slot: only its
			// bytes are allocated.
			if key, k, err := msgp.ReadBytes(b[p:]); err == nil && msgp.NextType(b[p:]) == msgp.StrType {
				if len(key) > 0 {
					c.cost += max(float64(len(key))*rounding, costMinBlock)
				}
				p += k
			} else if p, err = c.dynamic(p, 0); err != nil {
				return 0, err
			}
			if p, err = c.dynamic(p, 0); err != nil {
				return 0, err
			}
		}
		return p, nil
	}
	return c.skip(p)
}

func (c *checker) skipBare(p int) (int, error) {
	n, err := msgp.Len(c.b[p:])
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p + n, nil
}

var (
	customDecoderType     = reflect.TypeFor[msgpack.CustomDecoder]()
	unmarshalerType       = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshalerType   = reflect.TypeFor[encoding.TextUnmarshaler]()
)

var customCache sync.Map // reflect.Type -> bool

// customDecoded reports whether msgpack decodes t (or *t) by a method or an
// extension rather than by its kind.
func customDecoded(t reflect.Type) bool {
	if v, ok := customCache.Load(t); ok {
		return v.(bool)
	}
	c := isCustomDecoded(t)
	customCache.Store(t, c)
	return c
}

func isCustomDecoded(t reflect.Type) bool {
	if _, ok := handleTypes.Load(t); ok {
		return true
	}
	if t.Kind() == reflect.Interface {
		return false
	}
	for _, m := range []reflect.Type{customDecoderType, unmarshalerType, binaryUnmarshalerType, textUnmarshalerType} {
		if t.Implements(m) || t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// structFields is what Check knows of a struct type: the keys msgpack
// fills a field from, with the field's type (nil when two fields could
// take the key: Check then does not look inside).
type structFields struct {
	byName map[string]reflect.Type
	names  []string
}

var structFieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if v, ok := structFieldCache.Load(t); ok {
		return v.(*structFields)
	}
	fs := &structFields{byName: map[string]reflect.Type{}}
	addFields(fs, t, 0)
	for name := range fs.byName {
		fs.names = append(fs.names, name)
	}
	slices.Sort(fs.names)
	v, _ := structFieldCache.LoadOrStore(t, fs)
	return v.(*structFields)
}

// addFields adds the keys of t's fields, following msgpack's naming (the
// msgpack tag's name, else the field's; an alias option; an embedded
// struct's fields inlined). Where msgpack would not inline, the keys are
// added anyway: a key too many only makes Check look less closely.
func addFields(fs *structFields, t reflect.Type, depth int) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("msgpack")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || f.PkgPath != "" && !f.Anonymous {
			continue
		}
		if name == "" {
			name = f.Name
		}
		addField(fs, name, f.Type)
		for _, o := range strings.Split(opts, ",") {
			if alias, ok := strings.CutPrefix(o, "alias:"); ok {
				addField(fs, alias, f.Type)
			}
		}
		if f.Anonymous && depth < 8 {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				addFields(fs, et, depth+1)
			}
		}
	}
}

func addField(fs *structFields, name string, t reflect.Type) {
	if old, ok := fs.byName[name]; ok && old != t {
		t = nil
	}
	fs.byName[name] = t
}

var flatCache sync.Map // reflect.Type -> bool

// flat reports whether decoding into t cannot allocate more than
// BudgetPerByte bytes per message byte, whatever the message, and holds
// no struct: Check has nothing to do for it. Numbers, strings, []byte
// and slices of those, nested, are flat.
func flat(t reflect.Type) bool {
	if v, ok := flatCache.Load(t); ok {
		return v.(bool)
	}
	f := isFlat(t, 0)
	flatCache.Store(t, f)
	return f
}

func isFlat(t reflect.Type, depth int) bool {
	if depth > 8 {
		return false // deep, or a recursive slice type
	}
	if customDecoded(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	case reflect.Slice:
		return t.Elem().Size() <= 24 && isFlat(t.Elem(), depth+1)
	}
	return false
}

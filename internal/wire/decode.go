//go:build linux

package wire

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	_ "unsafe" // for go:linkname

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The decoding rules of the module, the same for every msgpack decoder in
// the process (wire's, the pool's, the manager's):
//
//   - An integer is decoded into a Go integer only if it fits: a value that
//     would overflow or change sign is a *DecodeError, as encoding/json
//     reports one. A float32 likewise (a float64 beyond its range).
//   - A value decoded into an empty interface (any) is nil, bool, int64
//     (uint64 only above math.MaxInt64), float64, string, []byte, []any,
//     map[string]any (map[any]any when a key is not a string), or a handle
//     or registered extension type: never the smallest type msgpack could
//     hold it in (int8 for 1, uint16 for 300), so that x == 1 holds for a
//     received 1 whatever the width of the int that was sent.
//   - A value of the wrong kind (a string where an int is expected) is a
//     *DecodeError naming both.
//
// msgpack/v5 chooses the decoder of a kind of Go value (int8, interface,
// ...) from a table and has no option for either rule, so the entries of
// those kinds are replaced here, once, before anything is decoded. The
// table is reached by linkname: the module pins msgpack's version, and
// TestDecodeRulesInstalled fails if a new version moves it.

//go:linkname msgpackKindDecoders github.com/vmihailenco/msgpack/v5.valueDecoders
var msgpackKindDecoders []func(*msgpack.Decoder, reflect.Value) error

func init() {
	d := msgpackKindDecoders
	if len(d) != int(reflect.UnsafePointer)+1 {
		panic(fmt.Sprintf("wire: msgpack's decoder table has %d entries, want %d: the msgpack version changed", len(d), reflect.UnsafePointer+1))
	}
	interfaceDefault = d[reflect.Interface]
	for k := reflect.Int; k <= reflect.Int64; k++ {
		d[k] = decodeIntValue
	}
	for k := reflect.Uint; k <= reflect.Uint64; k++ {
		d[k] = decodeUintValue
	}
	d[reflect.Float32] = decodeFloatValue
	d[reflect.Float64] = decodeFloatValue
	d[reflect.Bool] = checkKind(d[reflect.Bool], reflect.Bool)
	d[reflect.String] = checkKind(d[reflect.String], reflect.String)
	d[reflect.Interface] = decodeInterfaceValue
	// msgpack caches the decoder of a type at its first use: the built-in
	// types are set here too, in case one was used before this init.
	for _, v := range []any{int(0), int8(0), int16(0), int32(0), int64(0)} {
		msgpack.Register(v, nil, decodeIntValue)
	}
	for _, v := range []any{uint(0), uint8(0), uint16(0), uint32(0), uint64(0)} {
		msgpack.Register(v, nil, decodeUintValue)
	}
	msgpack.Register(float32(0), nil, decodeFloatValue)
	msgpack.Register(float64(0), nil, decodeFloatValue)
	// msgpack has a decoder of its own for this type, which would fill
	// the map with its own interface decoding.
	msgpack.Register(map[string]any(nil), nil, decodeInterfaceValue)
}

// interfaceDefault is msgpack's decoder of interface values, kept for
// interfaces with methods (error, and the user's own).
var interfaceDefault func(*msgpack.Decoder, reflect.Value) error

// A DecodeError reports a received value that does not fit the Go type it
// is decoded into.
type DecodeError struct {
	Value string       // what was sent: "number 100000", "a string", ...
	Type  reflect.Type // the Go type it was decoded into
	Hint  string       // what to do about it
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("cannot decode %s into Go value of type %s: %s", e.Value, e.Type, e.Hint)
}

const (
	hintRange = "it does not fit; receive into a wider type (int64, uint64, float64) or into any"
	hintKind  = "a value of another type was sent; receive into the type that is sent, or into any to see what arrives"
)

func rangeError(value string, t reflect.Type) error {
	return &DecodeError{Value: value, Type: t, Hint: hintRange}
}

func kindError(c byte, t reflect.Type) error {
	return &DecodeError{Value: describeCode(c), Type: t, Hint: hintKind}
}

// describeCode names the kind of msgpack value that starts with c.
func describeCode(c byte) string {
	switch {
	case msgpcode.IsFixedNum(c), c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		return "an integer"
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return "a map"
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return "an array"
	case msgpcode.IsFixedString(c), c == msgpcode.Str8, c == msgpcode.Str16, c == msgpcode.Str32:
		return "a string"
	case c == msgpcode.Bin8, c == msgpcode.Bin16, c == msgpcode.Bin32:
		return "binary data ([]byte)"
	case c == msgpcode.Float, c == msgpcode.Double:
		return "a float"
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.False, c == msgpcode.True:
		return "a bool"
	case msgpcode.IsExt(c):
		return "an extension value (a handle, a time or a registered type)"
	}
	return fmt.Sprintf("the invalid code 0x%02x", c)
}

func isIntCode(c byte) bool {
	return msgpcode.IsFixedNum(c) || c >= msgpcode.Uint8 && c <= msgpcode.Int64
}

// readInt reads an integer of any encoding; big is set, and u holds it,
// when it is over math.MaxInt64.
func readInt(d *msgpack.Decoder, c byte) (i int64, u uint64, big bool, err error) {
	if c == msgpcode.Uint64 {
		u, err = d.DecodeUint64()
		if err != nil || u > math.MaxInt64 {
			return 0, u, err == nil, err
		}
		return int64(u), u, false, nil
	}
	i, err = d.DecodeInt64()
	return i, uint64(i), false, err
}

// peekNumber looks at the next value for a number of v's type. A nil sets v
// to zero and is consumed, a value of another kind (a float too, unless
// floats are allowed) is an error naming both; in these cases done is true
// and err is the outcome. Otherwise it returns the value's code, unread.
func peekNumber(d *msgpack.Decoder, v reflect.Value, floats bool) (c byte, done bool, err error) {
	c, err = d.PeekCode()
	if err != nil {
		return c, true, err
	}
	if c == msgpcode.Nil {
		v.SetZero()
		return c, true, d.DecodeNil()
	}
	if !isIntCode(c) && !(floats && (c == msgpcode.Float || c == msgpcode.Double)) {
		return c, true, kindError(c, v.Type())
	}
	return c, false, nil
}

func decodeIntValue(d *msgpack.Decoder, v reflect.Value) error {
	c, done, err := peekNumber(d, v, false)
	if done {
		return err
	}
	i, u, big, err := readInt(d, c)
	if err != nil {
		return err
	}
	if big {
		return rangeError(fmt.Sprintf("number %d", u), v.Type())
	}
	if v.OverflowInt(i) {
		return rangeError(fmt.Sprintf("number %d", i), v.Type())
	}
	v.SetInt(i)
	return nil
}

func decodeUintValue(d *msgpack.Decoder, v reflect.Value) error {
	c, done, err := peekNumber(d, v, false)
	if done {
		return err
	}
	i, u, big, err := readInt(d, c)
	if err != nil {
		return err
	}
	if !big && i < 0 {
		return rangeError(fmt.Sprintf("number %d", i), v.Type())
	}
	if v.OverflowUint(u) {
		return rangeError(fmt.Sprintf("number %d", u), v.Type())
	}
	v.SetUint(u)
	return nil
}

func decodeFloatValue(d *msgpack.Decoder, v reflect.Value) error {
	c, done, err := peekNumber(d, v, true)
	if done {
		return err
	}
	var f float64
	if c == msgpcode.Uint64 {
		// msgpack's DecodeFloat64 reads a uint64 as an int64: one over
		// math.MaxInt64 would arrive negative.
		var u uint64
		u, err = d.DecodeUint64()
		f = float64(u)
	} else {
		f, err = d.DecodeFloat64()
	}
	if err != nil {
		return err
	}
	if v.OverflowFloat(f) {
		return rangeError(fmt.Sprintf("number %g", f), v.Type())
	}
	v.SetFloat(f)
	return nil
}

// checkKind wraps msgpack's decoder of a bool or a string with a check of
// what was sent, for an error that says it.
func checkKind(dec func(*msgpack.Decoder, reflect.Value) error, k reflect.Kind) func(*msgpack.Decoder, reflect.Value) error {
	return func(d *msgpack.Decoder, v reflect.Value) error {
		c, err := d.PeekCode()
		if err != nil {
			return err
		}
		ok := c == msgpcode.Nil
		switch k {
		case reflect.Bool:
			ok = ok || c == msgpcode.False || c == msgpcode.True
		case reflect.String:
			ok = ok || msgpcode.IsString(c) || msgpcode.IsBin(c)
		}
		if !ok {
			return kindError(c, v.Type())
		}
		return dec(d, v)
	}
}

// decodeInterfaceValue decodes into an empty interface (and into a
// map[string]any) by the rules above; other interfaces go to msgpack.
func decodeInterfaceValue(d *msgpack.Decoder, v reflect.Value) error {
	if v.Kind() == reflect.Map {
		x, err := decodeAny(d)
		if err != nil {
			return err
		}
		switch m := x.(type) {
		case nil:
			v.SetZero()
		case map[string]any:
			v.Set(reflect.ValueOf(m))
		default:
			return &DecodeError{Value: describeAny(x), Type: v.Type(), Hint: hintKind}
		}
		return nil
	}
	if v.NumMethod() != 0 {
		return interfaceDefault(d, v)
	}
	// An interface holding a non-nil pointer is decoded through it, as
	// encoding/json does; anything else is replaced.
	if !v.IsNil() && v.Elem().Kind() == reflect.Pointer && !v.Elem().IsNil() {
		if c, err := d.PeekCode(); err == nil && c != msgpcode.Nil {
			return d.DecodeValue(v.Elem())
		}
	}
	x, err := decodeAny(d)
	if err != nil {
		return err
	}
	if x == nil {
		v.SetZero()
	} else {
		v.Set(reflect.ValueOf(x))
	}
	return nil
}

func describeAny(x any) string {
	switch x.(type) {
	case map[any]any:
		return "a map with keys that are not strings"
	}
	return fmt.Sprintf("a %T", x)
}

// emptySlice is the value of every empty array decoded into any: a slice
// of capacity zero cannot be written through, so one value serves all, and
// a message of empty arrays does not allocate one header each.
var emptySlice any = []any{}

// decodeAny decodes the next value as a dynamic value.
func decodeAny(d *msgpack.Decoder) (any, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case isIntCode(c):
		i, u, big, err := readInt(d, c)
		if big {
			return u, err
		}
		return i, err
	case c == msgpcode.Float || c == msgpcode.Double:
		return d.DecodeFloat64()
	case c == msgpcode.Nil:
		return nil, d.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		return d.DecodeBool()
	case msgpcode.IsString(c):
		return d.DecodeString()
	case msgpcode.IsBin(c):
		return d.DecodeBytes()
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return emptySlice, nil
		}
		s := make([]any, n)
		for i := range s {
			if s[i], err = decodeAny(d); err != nil {
				return nil, err
			}
		}
		return s, nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return decodeAnyMap(d)
	}
	// Extensions: msgpack knows the registered types (handles, time).
	return d.DecodeInterface()
}

// decodeAnyMap decodes a map as map[string]any, or as map[any]any once a
// key is not a string.
func decodeAnyMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, n)
	for i := range n {
		c, err := d.PeekCode()
		if err != nil {
			return nil, err
		}
		if !msgpcode.IsString(c) {
			return decodeAnyMapRest(d, m, n-i)
		}
		k, err := d.DecodeString()
		if err != nil {
			return nil, err
		}
		if m[k], err = decodeAny(d); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeAnyMapRest decodes the last n pairs of a map whose first pairs,
// with string keys, are in m.
func decodeAnyMapRest(d *msgpack.Decoder, m map[string]any, n int) (any, error) {
	out := make(map[any]any, len(m)+n)
	for k, v := range m {
		out[k] = v
	}
	for range n {
		k, err := decodeAny(d)
		if err != nil {
			return nil, err
		}
		if k != nil && !reflect.TypeOf(k).Comparable() {
			return nil, &DecodeError{Value: fmt.Sprintf("a map with a %T key", k), Type: reflect.TypeFor[any](), Hint: "a Go map key must be comparable; send the map as a list of pairs"}
		}
		if out[k], err = decodeAny(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Decode decodes the next value of dec into v (a non-nil pointer) by the
// module's rules. Use it rather than dec.Decode, whose shortcuts for
// pointers to basic types (*int8, *map[string]any, ...) bypass the rules;
// data the decoder reads should have passed [Check].
func Decode(dec *msgpack.Decoder, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("wire: cannot decode into %T: not a non-nil pointer", v)
	}
	return dec.DecodeValue(rv.Elem())
}

// errorsAsDecode reports whether err holds a *DecodeError.
func errorsAsDecode(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}

//go:build linux

package wire

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	_ "unsafe" // for go:linkname

	"github.com/vmihailenco/msgpack/v5"
)

// ErrTooDeep reports a value nested deeper than the encoder follows, which
// in practice means a cyclic one (a pointer, map or slice that contains
// itself).
//
// msgpack has no cycle detection: it recurses until the goroutine's stack
// passes its 1 GB limit, a fatal error that kills the process, which
// recover cannot catch. So AppendTo checks first.
var ErrTooDeep = errors.New("wire: value nested too deeply (is it cyclic?)")

// maxEncodeSteps bounds the pointers, interfaces and containers followed
// from the top of a value to any part of it. A msgpack level costs at most
// a few steps (an interface, a pointer, a struct), so every value the
// receiver accepts (MaxDepth levels) is within it, and msgpack's recursion
// stays far from the stack limit.
const maxEncodeSteps = 8 * MaxDepth

// checkNesting returns ErrTooDeep if encoding v would follow more than
// maxEncodeSteps levels. Values whose type cannot nest without bound (no
// interface and no recursive type reachable, as most arguments and
// messages) are not walked at all.
func checkNesting(v any) error {
	return walkAny(v, 0)
}

// walkAny walks the dynamic values most messages are made of without
// reflection, and the rest with it.
func walkAny(x any, depth int) error {
	if depth++; depth > maxEncodeSteps {
		return ErrTooDeep
	}
	switch x := x.(type) {
	case nil, bool, string, []byte, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, float32, float64:
		return nil
	case []any:
		for _, e := range x {
			if err := walkAny(e, depth); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := walkAny(e, depth); err != nil {
				return err
			}
		}
		return nil
	case map[any]any:
		for k, e := range x {
			if err := walkAny(k, depth); err != nil {
				return err
			}
			if err := walkAny(e, depth); err != nil {
				return err
			}
		}
		return nil
	}
	rv := reflect.ValueOf(x)
	if err := infoOf(rv.Type()).encErr; err != nil {
		return err
	}
	if !mayNest(rv.Type()) {
		return nil
	}
	return walkNesting(rv, depth)
}

func walkNesting(v reflect.Value, depth int) error {
	// Pointers and interfaces, followed one by one: a chain of them can be
	// a cycle without any container (var x any; x = &x).
	for k := v.Kind(); k == reflect.Pointer || k == reflect.Interface; k = v.Kind() {
		if v.IsNil() {
			return nil
		}
		if k == reflect.Interface {
			if v.Type() == errorType {
				return nil // encoded as its Error() text
			}
			if v.CanInterface() {
				return walkAny(v.Interface(), depth)
			}
		} else if infoOf(v.Type()).opaque {
			return nil
		}
		if depth++; depth > maxEncodeSteps {
			return ErrTooDeep
		}
		v = v.Elem()
		if !mayNest(v.Type()) {
			return nil
		}
	}
	if depth++; depth > maxEncodeSteps {
		return ErrTooDeep
	}
	ti := infoOf(v.Type())
	if ti.opaque {
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		for _, i := range ti.fields {
			if err := walkNesting(v.Field(i), depth); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if !mayNest(v.Type().Elem()) {
			return nil
		}
		for i := range v.Len() {
			if err := walkNesting(v.Index(i), depth); err != nil {
				return err
			}
		}
	case reflect.Map:
		keys, elems := mayNest(v.Type().Key()), mayNest(v.Type().Elem())
		if v.Len() == 0 || !keys && !elems {
			return nil
		}
		// One variable each for keys and values, set in place: MapIter's
		// Key and Value would allocate a copy per entry.
		kv := reflect.New(v.Type().Key()).Elem()
		ev := reflect.New(v.Type().Elem()).Elem()
		for it := v.MapRange(); it.Next(); {
			if keys {
				kv.SetIterKey(it)
				if err := walkNesting(kv, depth); err != nil {
					return err
				}
			}
			if elems {
				ev.SetIterValue(it)
				if err := walkNesting(ev, depth); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

var (
	customEncoderType   = reflect.TypeFor[msgpack.CustomEncoder]()
	marshalerType       = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	errorType           = reflect.TypeFor[error]()

	handleTypes sync.Map // reflect.Type -> struct{}: registered with RegisterHandle
	typeInfos   sync.Map // reflect.Type -> *typeInfo
)

// typeInfo is what the walk needs to know about a type, computed once.
type typeInfo struct {
	// opaque: msgpack encodes the type by a method or an extension
	// rather than by walking it (its getEncoder makes the same choice);
	// what such a method does is its own business.
	opaque bool
	// nest: a value of the type can hold an interface or a value of a
	// recursive type somewhere msgpack looks: only then can its depth
	// be unbounded.
	nest bool
	// fields: for a struct, the fields msgpack encodes (all but
	// unexported ones that are not embedded, and those tagged "-") whose
	// type can nest.
	fields []int
	// encErr: the type cannot be sent (ErrNoExportedFields).
	encErr error
}

// mayNest reports typeInfo.nest, at once for the basic kinds.
func mayNest(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return false
	}
	return infoOf(t).nest
}

func infoOf(t reflect.Type) *typeInfo {
	if v, ok := typeInfos.Load(t); ok {
		return v.(*typeInfo)
	}
	ti := &typeInfo{opaque: isOpaque(t)}
	if bad := withoutFields(t, map[reflect.Type]bool{}); bad != nil {
		ti.encErr = fmt.Errorf("%w: type %s has no exported fields, so nothing of it would arrive; export the fields to send (Name, not name), or give the type EncodeMsgpack and DecodeMsgpack methods", ErrNoExportedFields, bad)
	}
	if !ti.opaque {
		ti.nest = searchNesting(t, map[reflect.Type]bool{})
		if t.Kind() == reflect.Struct {
			for _, i := range encodedFields(t) {
				if mayNest(t.Field(i).Type) {
					ti.fields = append(ti.fields, i)
				}
			}
		}
	}
	v, _ := typeInfos.LoadOrStore(t, ti)
	return v.(*typeInfo)
}

func isOpaque(t reflect.Type) bool {
	if _, ok := handleTypes.Load(t); ok {
		return true
	}
	if extRegistered(t) {
		return true
	}
	if t.Kind() == reflect.Interface {
		return t == errorType
	}
	for _, m := range []reflect.Type{customEncoderType, marshalerType, binaryMarshalerType, textMarshalerType} {
		if t.Implements(m) || t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// ErrNoExportedFields reports a value of a struct type that has fields but
// none that msgpack encodes: it would arrive as a zero value, so encoding
// it is an error, as in encoding/gob.
var ErrNoExportedFields = errors.New("wire: struct with no exported fields")

// withoutFields returns the first struct type reachable from t (through
// pointers, slices, arrays, maps and fields, not interfaces: their dynamic
// values are checked as the walk meets them) that has fields but none
// msgpack encodes, or nil. seen holds the types already searched.
func withoutFields(t reflect.Type, seen map[reflect.Type]bool) reflect.Type {
	if seen[t] || isOpaque(t) {
		return nil
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return withoutFields(t.Elem(), seen)
	case reflect.Map:
		if bad := withoutFields(t.Key(), seen); bad != nil {
			return bad
		}
		return withoutFields(t.Elem(), seen)
	case reflect.Struct:
		fields := encodedFields(t)
		if len(fields) == 0 {
			for i := range t.NumField() {
				if name := t.Field(i).Name; name != "_" && name != "_msgpack" {
					return t
				}
			}
		}
		for _, i := range fields {
			if bad := withoutFields(t.Field(i).Type, seen); bad != nil {
				return bad
			}
		}
	}
	return nil
}

// msgpackEncoders is msgpack's table of encoders by type, where
// msgpack.RegisterExtEncoder also files each extension's type under its
// number (an int8 key): the one record of which types travel as
// extensions registered outside this package. Reached by linkname, as the
// decoder table in decode.go.
//
//go:linkname msgpackEncoders github.com/vmihailenco/msgpack/v5.typeEncMap
var msgpackEncoders sync.Map

// extRegistered reports whether t or *t is registered with msgpack as an
// extension type.
func extRegistered(t reflect.Type) bool {
	found := false
	msgpackEncoders.Range(func(k, v any) bool {
		if _, ok := k.(int8); ok {
			if et, ok := v.(reflect.Type); ok && (et == t || et == reflect.PointerTo(t)) {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// encodedFields lists the struct fields msgpack encodes.
func encodedFields(t reflect.Type) []int {
	var idx []int
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" || f.PkgPath != "" && !f.Anonymous {
			continue
		}
		idx = append(idx, i)
	}
	return idx
}

// searchNesting is the depth-first search behind typeInfo.nest; onPath
// holds the types being searched, so meeting one again means a recursive
// type.
func searchNesting(t reflect.Type, onPath map[reflect.Type]bool) bool {
	if onPath[t] {
		return true
	}
	if isOpaque(t) {
		return false
	}
	onPath[t] = true
	defer delete(onPath, t)
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return searchNesting(t.Elem(), onPath)
	case reflect.Map:
		return searchNesting(t.Key(), onPath) || searchNesting(t.Elem(), onPath)
	case reflect.Struct:
		for _, i := range encodedFields(t) {
			if searchNesting(t.Field(i).Type, onPath) {
				return true
			}
		}
	}
	return false
}

//go:build linux

package manager

import (
	"bytes"
	"context"
	"fmt"
	gotoken "go/token"
	"reflect"
	"runtime"
	"strings"
	"sync"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/vmihailenco/msgpack/v5"
)

var types struct {
	sync.RWMutex
	ctors map[string]func() any
}

// Register makes a user type available to NewObject under typeName:
// constructor makes a new value, whose exported methods Proxy.Call can
// then reach. The server runs in a child process that is the same binary,
// so register at package level or in an init function, as with
// process.Register. Register panics on an empty or duplicate name or a nil
// constructor.
func Register(typeName string, constructor func() any) {
	if typeName == "" || constructor == nil {
		panic(fmt.Sprintf("manager: Register(%q): empty name or nil constructor", typeName))
	}
	types.Lock()
	defer types.Unlock()
	if types.ctors == nil {
		types.ctors = make(map[string]func() any)
	}
	if _, dup := types.ctors[typeName]; dup {
		panic(fmt.Sprintf("manager: type %q registered twice", typeName))
	}
	types.ctors[typeName] = constructor
}

// customState is a registered type's value. Its methods run one at a
// time (mu), outside the server lock, each in its own goroutine: a slow
// method delays only calls on the same object.
type customState struct {
	typeName string
	mu       sync.Mutex
	value    any
}

func (s *server) newCustom(o *object, name string) (code int, msg string) {
	types.RLock()
	ctor := types.ctors[name]
	types.RUnlock()
	if ctor == nil {
		return codeNoType, fmt.Sprintf("%q (register it with manager.Register in the server's binary)", name)
	}
	defer func() {
		if r := recover(); r != nil {
			code, msg = codeRemote, "New\x00panic: "+fmt.Sprint(r)
		}
	}()
	v := ctor()
	if v == nil {
		return codeRemote, "New\x00constructor returned nil"
	}
	o.custom = &customState{typeName: name, value: v}
	return codeOK, ""
}

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

func (s *server) customOp(c *sconn, r *sreq, o *object) (int, string) {
	if r.op != opCall {
		return unknownOp(r, o)
	}
	if !args(r, 2) {
		return bad("Call: want method, arguments")
	}
	name, _, err := msgp.ReadString(r.args[0])
	if err != nil {
		return bad("Call: bad method name")
	}
	cs := o.custom
	if cs.value == nil {
		return codeNoObject, ""
	}
	// Only exported methods: reflect finds no others, and the name check
	// makes that explicit.
	if !gotoken.IsExported(name) {
		return codeNoMethod, fmt.Sprintf("%q is not exported", name)
	}
	m := reflect.ValueOf(cs.value).MethodByName(name)
	if !m.IsValid() {
		return codeNoMethod, fmt.Sprintf("%s has no method %s", cs.typeName, name)
	}
	n, pos, err := msgp.ReadArrayHeader(r.args[1])
	if err != nil {
		return bad("Call: arguments must be an array")
	}
	raw := make([][]byte, n)
	for i := range raw {
		k, _ := skipValue(r.args[1][pos:], nil)
		raw[i] = r.args[1][pos : pos+k]
		pos += k
	}
	ctx, stop := context.WithCancel(context.Background())
	w := s.park(c, r, o)
	w.stop = stop
	go s.runCall(w, cs, m, name, raw, ctx)
	return codeOK, ""
}

// runCall runs a method and answers the parked call.
func (s *server) runCall(w *waiter, cs *customState, m reflect.Value, name string, raw [][]byte, ctx context.Context) {
	defer w.stop()
	code, payload := callMethod(ctx, cs, m, name, raw)
	s.mu.Lock()
	// A cancelled call whose method failed (with ctx's error, most
	// likely) is reported as cancelled; one that finished anyway reports
	// its result.
	if code == codeRemote && ctx.Err() != nil {
		code, payload = codeCancelled, nil
	}
	if w.c.waiting != nil && w.c.waiting[w.id] == w {
		s.answer(w, code, payload, nil)
	}
	s.drain()
	s.kickWriters(nil)
	s.mu.Unlock()
}

func callMethod(ctx context.Context, cs *customState, m reflect.Value, name string, raw [][]byte) (code int, payload []byte) {
	t := m.Type()
	var in []reflect.Value
	first := 0
	if t.NumIn() > 0 && t.In(0) == ctxType {
		in = append(in, reflect.ValueOf(ctx))
		first = 1
	}
	want := t.NumIn() - first
	if t.IsVariadic() {
		if len(raw) < want-1 {
			return codeNoMethod, msgp.AppendString(nil, fmt.Sprintf("%s takes at least %d arguments, got %d", name, want-1, len(raw)))
		}
	} else if len(raw) != want {
		return codeNoMethod, msgp.AppendString(nil, fmt.Sprintf("%s takes %d arguments, got %d", name, want, len(raw)))
	}
	for i, b := range raw {
		var pt reflect.Type
		if j := first + i; t.IsVariadic() && j >= t.NumIn()-1 {
			pt = t.In(t.NumIn() - 1).Elem()
		} else {
			pt = t.In(j)
		}
		p := reflect.New(pt)
		if err := wire.Unmarshal(b, nil, p.Interface()); err != nil {
			return codeNoMethod, msgp.AppendString(nil, fmt.Sprintf("%s argument %d: %v", name, i+1, err))
		}
		in = append(in, p.Elem())
	}
	var out []reflect.Value
	cs.mu.Lock()
	func() {
		defer func() {
			if r := recover(); r != nil {
				code = codeRemote
				payload = msgp.AppendString(nil, fmt.Sprintf("%s\x00panic: %v\n\n%s", name, r, panicFrames()))
			}
		}()
		out = m.Call(in)
	}()
	cs.mu.Unlock()
	if code == codeRemote {
		return code, payload
	}
	if k := len(out); k > 0 && t.Out(k-1) == errType {
		if err, _ := out[k-1].Interface().(error); err != nil {
			return codeRemote, msgp.AppendString(nil, name+"\x00"+err.Error())
		}
		out = out[:k-1]
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	var err error
	switch len(out) {
	case 0:
		return codeOK, nil
	case 1:
		err = enc.Encode(out[0].Interface())
	default:
		vals := make([]any, len(out))
		for i, v := range out {
			vals[i] = v.Interface()
		}
		err = enc.Encode(vals)
	}
	if err != nil {
		return codeRemote, msgp.AppendString(nil, fmt.Sprintf("%s\x00cannot encode the result: %v", name, err))
	}
	return codeOK, buf.Bytes()
}

// panicFrames returns the stack of a panic in a registered type's method,
// from the panic down to the method the client called: the frames of the
// user's code, not the server's (how it dispatches is no business of the
// caller's, and its goroutine stack would be noise). It is called by the
// deferred function that recovered.
func panicFrames() string {
	pcs := make([]uintptr, 64)
	pcs = pcs[:runtime.Callers(2, pcs)]
	frames := runtime.CallersFrames(pcs)
	var b strings.Builder
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case !inPanic || strings.HasPrefix(f.Function, "runtime."):
		case strings.HasPrefix(f.Function, "reflect."):
			return b.String()
		default:
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		}
		if !more {
			return b.String()
		}
	}
}

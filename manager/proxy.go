//go:build linux

package manager

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/process"
	"github.com/vmihailenco/msgpack/v5"
)

// serverID names one run of one server: a proxy that outlives its server
// never reaches another one that took over the address.
type serverID [16]byte

func newServerID() serverID {
	var id serverID
	rand.Read(id[:])
	return id
}

// ref is what a proxy carries to another process: where the server is,
// which object, and, when it travels outside the manager's own values, a
// transfer token (see lifetime.go). Never an authkey (see known.go).
type ref struct {
	server   serverID
	network  string
	addr     string
	id       uint64
	kind     kind
	typeName string
	token    uint64 // 0 inside values stored on the server
	mark     []byte // see familyMark; nil inside values stored on the server
}

const refVersion = 2

func (r *ref) append(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 9)
	b = msgp.AppendUint(b, refVersion)
	b = msgp.AppendBin(b, r.server[:])
	b = msgp.AppendString(b, r.network)
	b = msgp.AppendString(b, r.addr)
	b = msgp.AppendUint(b, r.id)
	b = msgp.AppendUint(b, uint64(r.kind))
	b = msgp.AppendString(b, r.typeName)
	b = msgp.AppendUint(b, r.token)
	return msgp.AppendBin(b, r.mark) // nil (not an empty bin) when there is none
}

var errBadRef = errors.New("manager: malformed proxy reference")

// parseRef decodes a proxy extension payload. It is peer input (the server
// parses the refs inside stored values with it), so it checks everything.
func parseRef(b []byte) (ref, error) {
	var r ref
	n, pos, err := msgp.ReadArrayHeader(b)
	if err != nil || n != 9 {
		return r, errBadRef
	}
	next := func(read func([]byte) (int, error)) {
		if err != nil {
			return
		}
		var k int
		k, err = read(b[pos:])
		pos += k
	}
	var version, kd uint64
	var server, mark []byte
	next(func(b []byte) (k int, err error) { version, k, err = msgp.ReadUint(b); return })
	next(func(b []byte) (k int, err error) { server, k, err = msgp.ReadBytes(b); return })
	next(func(b []byte) (k int, err error) { r.network, k, err = msgp.ReadString(b); return })
	next(func(b []byte) (k int, err error) { r.addr, k, err = msgp.ReadString(b); return })
	next(func(b []byte) (k int, err error) { r.id, k, err = msgp.ReadUint(b); return })
	next(func(b []byte) (k int, err error) { kd, k, err = msgp.ReadUint(b); return })
	next(func(b []byte) (k int, err error) { r.typeName, k, err = msgp.ReadString(b); return })
	next(func(b []byte) (k int, err error) { r.token, k, err = msgp.ReadUint(b); return })
	next(func(b []byte) (k int, err error) { mark, k, err = msgp.ReadBytes(b); return })
	if err != nil || pos != len(b) || version != refVersion || len(server) != len(r.server) ||
		kd == 0 || kd >= uint64(kindEnd) || r.id == 0 {
		return ref{}, errBadRef
	}
	copy(r.server[:], server)
	r.kind = kind(kd)
	if mark != nil {
		r.mark = append([]byte{}, mark...)
	}
	return r, nil
}

// proxy is the state behind every proxy type: the reference, and the
// connection it uses once bound. A proxy made by this process (New*, or
// decoded from a reply value) is bound at once; one decoded from a process
// argument, a pipe or a queue binds on first use, dialling the server if
// this process has no connection to it yet.
type proxy struct {
	ref     ref
	cl      atomic.Pointer[client]
	bindMu  sync.Mutex
	closed  atomic.Bool
	cleanup runtime.Cleanup
}

// newBound makes a proxy for an object that this client has (or is about
// to be granted) a reference to.
func newBound(cl *client, r ref) *proxy {
	r.token, r.mark = 0, nil
	p := &proxy{ref: r}
	p.attach(cl)
	return p
}

// attach binds p to cl: the client counts it, and when p becomes garbage
// without Close the runtime's cleanup drops it.
func (p *proxy) attach(cl *client) {
	cl.adopt(p.ref.id)
	p.cl.Store(cl)
	p.cleanup = runtime.AddCleanup(p, func(a dropArg) { a.cl.drop(a.id) }, dropArg{cl, p.ref.id})
}

type dropArg struct {
	cl *client
	id uint64
}

// client returns the connection to use, binding p first if needed.
func (p *proxy) client(ctx context.Context) (*client, error) {
	if p == nil {
		return nil, fmt.Errorf("manager: nil proxy")
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if cl := p.cl.Load(); cl != nil {
		return cl, nil
	}
	return p.bind(ctx)
}

// bind takes this process's own reference to the object: the transfer
// token if the proxy carries one, else a plain reference by id (which
// fails with ErrNoObject when the object was freed meanwhile).
func (p *proxy) bind(ctx context.Context) (*client, error) {
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if cl := p.cl.Load(); cl != nil {
		return cl, nil
	}
	cl, err := lookupClient(ctx, &p.ref)
	if err != nil {
		return nil, err
	}
	r := cl.request(opRedeem, p.ref.id, 2)
	r.uint(p.ref.token)
	r.uint(uint64(p.ref.kind))
	rep, err := cl.roundTrip(ctx, r, plain)
	if err != nil {
		return nil, err
	}
	if p.closed.Load() { // closed meanwhile: give the reference back
		cl.settle(rep.grants)
		return nil, ErrClosed
	}
	p.attach(cl)
	cl.settle(rep.grants)
	return cl, nil
}

// close drops this proxy's reference. Idempotent.
func (p *proxy) close() error {
	if p == nil {
		return nil
	}
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if p.closed.Swap(true) {
		return nil
	}
	if cl := p.cl.Load(); cl != nil {
		p.cleanup.Stop()
		cl.drop(p.ref.id)
	}
	return nil
}

// call runs one operation on the object; build encodes its arguments into
// the request (whose writer knows the client, so that proxies encoded
// inside know where they are going). The caller decodes the reply's value
// with the returned client, then settles its grants (decodeAs does both).
func (p *proxy) call(ctx context.Context, o op, nargs int, mode callMode, build func(r *request) error) (reply, *client, error) {
	cl, err := p.client(ctx)
	if err != nil {
		return reply{}, nil, err
	}
	r := cl.request(o, p.ref.id, nargs)
	if build != nil {
		if err := build(r); err != nil {
			r.free()
			return reply{}, nil, err
		}
	}
	rep, err := cl.roundTrip(ctx, r, mode)
	runtime.KeepAlive(p)
	if err != nil {
		if errors.Is(err, ErrClosed) && p.closed.Load() {
			return rep, nil, ErrClosed
		}
		return rep, nil, &opError{what: p.ref.kind.String() + "." + o.String(), err: err}
	}
	return rep, cl, nil
}

// opError names the operation that failed; errors.Is and As see through
// it to the sentinel or *RemoteError inside.
type opError struct {
	what string
	err  error
}

func (e *opError) Error() string {
	return "manager: " + e.what + ": " + strings.TrimPrefix(e.err.Error(), "manager: ")
}

func (e *opError) Unwrap() error { return e.err }

// exportTimeout bounds the round trip that encoding a proxy for another
// process makes (encoders take no context).
const exportTimeout = 30 * time.Second

// encode writes p as a proxy extension. Inside a request to p's own server
// (a value stored in a Dict, say) the reference is bare: the server counts
// it for the value that holds it. Anywhere else (a process argument, a
// pipe, a queue, a value for another server) it carries a transfer token,
// which keeps the object alive until the receiver takes its own reference;
// the receiver connects with the key it knows for the address (see
// known.go).
func (p *proxy) encode(enc *msgpack.Encoder) error {
	if p == nil {
		return enc.EncodeNil()
	}
	payload, err := p.payload(enc.Writer())
	if err != nil {
		return err
	}
	if err := enc.EncodeExtHeader(wire.ExtProxy, len(payload)); err != nil {
		return err
	}
	_, err = enc.Writer().Write(payload)
	return err
}

// payload returns the extension payload for p, written to w.
func (p *proxy) payload(w io.Writer) ([]byte, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("manager: cannot send a closed %s proxy: %w", p.ref.kind, ErrClosed)
	}
	r := p.ref
	if vb, ok := w.(*valueBuf); ok && vb.cl != nil && vb.cl.serverID == r.server {
		r.token, r.mark = 0, nil
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
		defer cancel()
		rep, cl, err := p.call(ctx, opExport, 0, plain, nil)
		if err != nil {
			return nil, err
		}
		tok, _, err := msgp.ReadUint(rep.payload)
		if err != nil {
			return nil, fmt.Errorf("manager: bad export reply: %w", err)
		}
		r.token = tok
		if cl.familyKey {
			r.mark = familyMark(&r)
		}
	}
	return r.append(nil), nil
}

// decodeProxy reads a proxy extension (or nil) for a proxy of kind want
// (0: any kind).
func decodeProxy(dec *msgpack.Decoder, want kind) (*proxy, error) {
	id, n, err := dec.DecodeExtHeader()
	if err != nil {
		return nil, err
	}
	if id != wire.ExtProxy {
		return nil, fmt.Errorf("manager: decoding a proxy, got msgpack extension %d", id)
	}
	return readProxy(dec, n, want)
}

func readProxy(dec *msgpack.Decoder, n int, want kind) (*proxy, error) {
	if n > maxRefPayload || n < 0 {
		return nil, errBadRef
	}
	payload := make([]byte, n)
	if err := dec.ReadFull(payload); err != nil {
		return nil, err
	}
	r, err := parseRef(payload)
	if err != nil {
		return nil, err
	}
	if want != 0 && r.kind != want {
		return nil, fmt.Errorf("%w: a %s proxy cannot be decoded as a %s", ErrWrongKind, r.kind, want)
	}
	if vr, ok := dec.Buffered().(*valueReader); ok && vr.cl != nil && vr.cl.serverID == r.server {
		// From a reply of this very server, which granted this client a
		// reference for it.
		return newBound(vr.cl, r), nil
	}
	return &proxy{ref: r}, nil
}

// The client registry: one process-wide table of open connections by
// server, so that proxies decoded from process arguments, pipes and queues
// share a connection with each other and with a Manager of this process.
var registry struct {
	sync.Mutex
	clients map[serverID][]*client
}

func registerClient(c *client) {
	registry.Lock()
	defer registry.Unlock()
	if registry.clients == nil {
		registry.clients = make(map[serverID][]*client)
	}
	registry.clients[c.serverID] = append(registry.clients[c.serverID], c)
}

func unregisterClient(c *client) {
	registry.Lock()
	defer registry.Unlock()
	list := registry.clients[c.serverID]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(registry.clients, c.serverID)
	} else {
		registry.clients[c.serverID] = list
	}
}

// lookupClient returns a live connection to r's server, dialling one if
// there is none and this process knows the server's address (see
// known.go): a proxy never makes this process dial an address it was not
// told about with a key.
func lookupClient(ctx context.Context, r *ref) (*client, error) {
	registry.Lock()
	defer registry.Unlock()
	live := registry.clients[r.server][:0]
	for _, c := range registry.clients[r.server] {
		if c.failure() == nil {
			live = append(live, c)
		}
	}
	if len(live) > 0 {
		registry.clients[r.server] = live
		return live[0], nil
	}
	delete(registry.clients, r.server)
	key, ok := knownKey(r.network, r.addr)
	if !ok && r.mark != nil && hmac.Equal(r.mark, familyMark(r)) {
		key, ok = process.AuthKey(), true
	}
	if !ok {
		return nil, unknownManager(r)
	}
	c, err := dial(ctx, r.network, r.addr, key)
	if err != nil {
		// The server is gone (or unreachable): the same error as a proxy
		// that had connected before it went.
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	if c.serverID != r.server {
		c.Close()
		return nil, fmt.Errorf("%w: the manager that made it is gone (another one serves %s now)", ErrNoObject, r.addr)
	}
	if registry.clients == nil {
		registry.clients = make(map[serverID][]*client)
	}
	registry.clients[r.server] = append(registry.clients[r.server], c)
	return c, nil
}

// The generic proxy travels through the ext registry, so that a proxy
// decoded into an interface-typed value (a Dict[string, any], say) arrives
// as a working *Proxy. The typed proxies encode themselves the same way
// (msgpack.CustomEncoder), with the same extension number.
func init() {
	msgpack.RegisterExtEncoder(wire.ExtProxy, (*Proxy)(nil), func(e *msgpack.Encoder, v reflect.Value) ([]byte, error) {
		x := v.Interface().(*Proxy)
		if x.p == nil {
			return nil, fmt.Errorf("manager: cannot encode a zero Proxy")
		}
		return x.p.payload(e.Writer())
	})
	msgpack.RegisterExtDecoder(wire.ExtProxy, (*Proxy)(nil), func(d *msgpack.Decoder, v reflect.Value, n int) error {
		p, err := readProxy(d, n, 0)
		if err != nil {
			return err
		}
		v.Interface().(*Proxy).p = p
		return nil
	})
}

//go:build linux

package manager

import (
	"context"
)

// Proxy is a proxy to an object of a registered type (see Register), or,
// when a proxy of any kind is decoded into an interface-typed value, that
// proxy in generic form (Call then only works for registered types).
type Proxy struct{ p *proxy }

// NewObject creates an object of the type registered as typeName (or, with
// Named, finds one). ErrNoType if the server's binary has no such type.
func NewObject(ctx context.Context, m *Manager, typeName string, opts ...ObjectOption) (*Proxy, error) {
	p, err := m.create(ctx, kindObject, opts, typeName, nil)
	if err != nil {
		return nil, err
	}
	return &Proxy{p}, nil
}

// Call calls the exported method of the object, with args, and decodes
// its result into result (a pointer, or nil to ignore it). A method with
// several results (besides a final error) returns them as an array, which
// decodes into a slice or an as_array struct. A method whose first
// parameter is a context.Context gets one that is cancelled when ctx ends
// (or the caller's connection closes). The method's error, or its panic,
// comes back as a *RemoteError (errors.Is(err, ErrRemote)). A name that
// is not an exported method, or arguments that do not fit it, give
// ErrNoMethod. Arguments and results are plain values: proxies inside
// them are not supported.
func (x *Proxy) Call(ctx context.Context, method string, result any, args ...any) error {
	if args == nil {
		args = []any{}
	}
	rep, cl, err := x.p.call(ctx, opCall, 2, blocking, values(method, args))
	if err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	return cl.decodeValue(rep.payload, result)
}

// TypeName returns the registered type name ("" for a built-in kind).
func (x *Proxy) TypeName() string { return x.p.ref.typeName }

// Close drops this proxy's reference. Idempotent.
func (x *Proxy) Close() error { return x.p.close() }

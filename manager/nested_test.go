//go:build linux

package manager_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNestedProxies: a proxy stored in a Dict, a List or a Queue comes
// back as a working proxy, and writes through it are seen through every
// other proxy of the same object (CPython's nested-proxy tests).
func TestNestedProxies(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	outer, err := manager.NewDict[string, *manager.List[int]](ctx, m)
	require.NoError(t, err)
	inner, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, outer.Set(ctx, "nums", inner))
	got, ok, err := outer.Get(ctx, "nums")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, got.Append(ctx, 1))
	require.NoError(t, inner.Append(ctx, 2))
	all, err := got.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, all)

	// A list of dicts, and a queue inside a dict.
	dl, err := manager.NewList[*manager.Dict[string, int]](ctx, m)
	require.NoError(t, err)
	for i := range 3 {
		d, err := manager.NewDict[string, int](ctx, m)
		require.NoError(t, err)
		require.NoError(t, d.Set(ctx, "i", i))
		require.NoError(t, dl.Append(ctx, d))
	}
	ds, err := dl.Slice(ctx)
	require.NoError(t, err)
	for i, d := range ds {
		v, _, err := d.Get(ctx, "i")
		require.NoError(t, err)
		assert.Equal(t, i, v)
	}
	qd, err := manager.NewDict[string, *manager.Queue[string]](ctx, m)
	require.NoError(t, err)
	q, err := manager.NewQueue[string](ctx, m, 0)
	require.NoError(t, err)
	require.NoError(t, qd.Set(ctx, "q", q))
	q2, _, err := qd.Get(ctx, "q")
	require.NoError(t, err)
	require.NoError(t, q2.Put(ctx, "via nested"))
	s, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "via nested", s)

	// Decoded into an interface, a proxy is a generic *Proxy.
	anyd, err := manager.NewDict[string, any](ctx, m)
	require.NoError(t, err)
	require.NoError(t, anyd.Set(ctx, "l", inner))
	v, _, err := anyd.Get(ctx, "l")
	require.NoError(t, err)
	assert.IsType(t, &manager.Proxy{}, v)

	// A proxy cannot be decoded as another kind: the same named dict,
	// typed differently by two proxies.
	mixed, err := manager.NewDict[string, any](ctx, m, manager.Named("mixed"))
	require.NoError(t, err)
	require.NoError(t, mixed.Set(ctx, "x", inner))
	require.NoError(t, mixed.Set(ctx, "nil", nil))
	asDict, err := manager.NewDict[string, *manager.Dict[string, int]](ctx, m, manager.Named("mixed"))
	require.NoError(t, err)
	_, _, err = asDict.Get(ctx, "x")
	assert.ErrorIs(t, err, manager.ErrWrongKind)
	got2, ok, err := asDict.Get(ctx, "nil")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Nil(t, got2)
}

type nestedArg struct {
	Outer *manager.Dict[string, *manager.List[int]]
	Queue *manager.Queue[*manager.Dict[string, int]]
}

// nestedChild reads a nested proxy, writes through it, and sends a new
// proxy back through a queue.
var nestedChild = process.Register("test.nestedChild", func(ctx context.Context, a nestedArg) error {
	l, ok, err := a.Outer.Get(ctx, "nums")
	if err != nil || !ok {
		return fmt.Errorf("get nested: %v %v", ok, err)
	}
	if err := l.Append(ctx, 42); err != nil {
		return err
	}
	d, err := a.Queue.Get(ctx)
	if err != nil {
		return err
	}
	if err := d.Set(ctx, "from", 2); err != nil {
		return err
	}
	return a.Queue.Put(ctx, d)
})

func TestNestedProxiesInChild(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	outer, err := manager.NewDict[string, *manager.List[int]](ctx, m)
	require.NoError(t, err)
	inner, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, outer.Set(ctx, "nums", inner))
	q, err := manager.NewQueue[*manager.Dict[string, int]](ctx, m, 0)
	require.NoError(t, err)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, d))
	p := process.New(nestedChild, nestedArg{Outer: outer, Queue: q})
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctx))
	all, err := inner.Slice(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{42}, all)
	back, err := q.Get(ctx)
	require.NoError(t, err)
	v, _, err := back.Get(ctx, "from")
	require.NoError(t, err)
	assert.Equal(t, 2, v)
}

// counter is a user type served by the manager.
type counter struct {
	n int
}

func (c *counter) Inc(delta int) int     { c.n += delta; return c.n }
func (c *counter) Get() int              { return c.n }
func (c *counter) Pair() (int, string)   { return c.n, "pair" }
func (c *counter) Fail(msg string) error { return errors.New(msg) }
func (c *counter) Panic()                { panic("deliberate") }
func (c *counter) Sum(xs ...int) (s int) {
	for _, x := range xs {
		s += x
	}
	return s
}
func (c *counter) private() int { return -1 }
func (c *counter) Slow(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return nil
	}
}

var _ = (*counter).private

func init() {
	manager.Register("test.counter", func() any { return &counter{} })
}

var incCounter = process.Register("test.incCounter", func(ctx context.Context, p *manager.Proxy) error {
	return p.Call(ctx, "Inc", nil, 10)
})

func TestRegisteredType(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	c, err := manager.NewObject(ctx, m, "test.counter")
	require.NoError(t, err)
	assert.Equal(t, "test.counter", c.TypeName())
	var n int
	require.NoError(t, c.Call(ctx, "Inc", &n, 5))
	assert.Equal(t, 5, n)
	runChildren(t, ctx, incCounter, c)
	require.NoError(t, c.Call(ctx, "Get", &n))
	assert.Equal(t, 15, n)
	var pair struct {
		_msgpack struct{} `msgpack:",as_array"`
		N        int
		S        string
	}
	require.NoError(t, c.Call(ctx, "Pair", &pair))
	assert.Equal(t, 15, pair.N)
	assert.Equal(t, "pair", pair.S)
	require.NoError(t, c.Call(ctx, "Sum", &n, 1, 2, 3))
	assert.Equal(t, 6, n)

	// Only exported methods, with fitting arguments.
	assert.ErrorIs(t, c.Call(ctx, "private", &n), manager.ErrNoMethod)
	assert.ErrorIs(t, c.Call(ctx, "Nope", &n), manager.ErrNoMethod)
	assert.ErrorIs(t, c.Call(ctx, "Inc", &n), manager.ErrNoMethod)
	assert.ErrorIs(t, c.Call(ctx, "Inc", &n, "not an int"), manager.ErrNoMethod)

	// Errors and panics come back; the server lives on.
	err = c.Call(ctx, "Fail", nil, "boom")
	var re *manager.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "boom", re.Message)
	assert.ErrorIs(t, err, manager.ErrRemote)
	err = c.Call(ctx, "Panic", nil)
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "deliberate")
	// The panic value and the frames of the method called, not the
	// server's goroutine stack.
	assert.Contains(t, re.Message, "(*counter).Panic")
	assert.Contains(t, re.Message, "nested_test.go:")
	assert.NotContains(t, re.Message, "goroutine ")
	assert.NotContains(t, re.Message, "reflect.")
	assert.NotContains(t, re.Message, "manager.(*server)")
	assert.NotContains(t, re.Message, "runtime/debug")

	// A method taking a ctx sees the caller's cancellation.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	begin := time.Now()
	err = c.Call(short, "Slow", nil)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(begin), 3*time.Second)

	_, err = manager.NewObject(ctx, m, "test.unregistered")
	assert.ErrorIs(t, err, manager.ErrNoType)
	// Builtin kinds have no methods to call.
	d, err := manager.NewDict[string, any](ctx, m)
	require.NoError(t, err)
	l, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "l", l))
	v, _, err := d.Get(ctx, "l")
	require.NoError(t, err)
	assert.Error(t, v.(*manager.Proxy).Call(ctx, "Append", nil, 1))
	require.NoError(t, c.Call(ctx, "Get", &n))
	assert.Equal(t, 15, n)
}

//go:build linux

package manager_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// A proxy of manager A stored in manager B, or sent on a pipe, holds no
// trace of A's key: whoever has B's key (or reads the pipe) learns nothing
// that lets them into A.
func TestProxyCarriesNoAuthKey(t *testing.T) {
	ctx := testbin.Context(t)
	keyA := make([]byte, 32)
	rand.Read(keyA)
	a := start(t, manager.WithAuthKey(keyA))
	b := start(t)
	d, err := manager.NewDict[string, int](ctx, a)
	require.NoError(t, err)
	defer d.Close()
	holder, err := manager.NewDict[string, *manager.Dict[string, int]](ctx, b, manager.Named("holder"))
	require.NoError(t, err)
	defer holder.Close()
	require.NoError(t, holder.Set(ctx, "a", d))
	raw, err := manager.NewDict[string, msgpack.RawMessage](ctx, b, manager.Named("holder"))
	require.NoError(t, err)
	defer raw.Close()
	stored, ok, err := raw.Get(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, bytes.Contains(stored, keyA), "A's key is stored in B")

	sent, files, err := wire.Marshal(d)
	require.NoError(t, err)
	files.Close()
	assert.False(t, bytes.Contains(sent, keyA), "A's key travels with the proxy")
	assert.False(t, bytes.Contains(sent, process.AuthKey()), "the process key travels with the proxy")

	// The proxy still works where A is known.
	got, ok, err := holder.Get(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, got.Set(ctx, "k", 1))
	got.Close()
}

type proxyArg struct {
	D *manager.Dict[string, int]
	// Network, Addr and Key are for Allow; empty: do not call it.
	Network, Addr string
	Key           []byte
}

// useProxy runs in a child: one call on the proxy it was given, after
// Allow when told to.
var useProxy = process.Register("test.useProxy", func(ctx context.Context, a proxyArg) error {
	if a.Network != "" {
		manager.Allow(a.Network, a.Addr, a.Key)
	}
	_, err := a.D.Add(ctx, "n", 1)
	if err != nil && !errors.Is(err, manager.ErrUnknownManager) {
		return fmt.Errorf("not ErrUnknownManager: %w", err)
	}
	return err
})

// A child inherits the managers its parent knows, with their keys, even a
// TCP manager with a key of its own; a child that does not (its inherited
// table removed) refuses the proxy until told with Allow.
func TestChildKnowsParentsManagers(t *testing.T) {
	ctx := testbin.Context(t)
	key := []byte("not the process key")
	m := start(t, manager.WithAuthKey(key), manager.WithAddress("tcp", "127.0.0.1:0"))
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	defer d.Close()
	network, addr := m.Address()

	run := func(arg proxyArg, opts ...process.Option) error {
		p := process.New(useProxy, arg, opts...)
		require.NoError(t, p.Start())
		return p.Join(ctx)
	}
	require.NoError(t, run(proxyArg{D: d}), "a child could not use its parent's manager")
	err = run(proxyArg{D: d}, process.WithEnv("MPGO_MANAGERS="))
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee, "a proxy of an unknown manager was used")
	assert.Contains(t, ee.Message, fmt.Sprintf("manager.Allow(%q, %q, key)", network, addr))
	assert.NotContains(t, ee.Message, "not ErrUnknownManager")
	require.NoError(t, run(proxyArg{D: d, Network: network, Addr: addr, Key: key}, process.WithEnv("MPGO_MANAGERS=")))
	n, _, err := d.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

// Five hundred idle connections held open on the manager's TCP port (no
// key needed to make them) do not lock legitimate clients out: Connect
// still succeeds, each within a second.
func TestIdleConnectionsDoNotLockOut(t *testing.T) {
	const idle = 500
	testbin.NeedFDs(t, idle)
	ctx := testbin.Context(t)
	m := start(t, manager.WithAddress("tcp", "127.0.0.1:0"))
	network, addr := m.Address()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.Dial(network, addr)
		require.NoError(t, err)
		held = append(held, c)
	}
	for i := range 5 {
		cctx, cancel := context.WithTimeout(ctx, time.Second+testbin.Slack)
		start := time.Now()
		c, err := manager.Connect(cctx, network, addr, nil)
		cancel()
		require.NoError(t, err, "connect %d with %d idle connections held", i, idle)
		t.Logf("connect %d: %v", i, time.Since(start))
		c.Close()
	}
}

// The client's handshake lasts as long as its ctx allows, no longer.
func TestConnectHonoursCtx(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	ctx, cancel := context.WithTimeout(testbin.Context(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = manager.Connect(ctx, "tcp", silent.Addr().String(), nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 300*time.Millisecond+testbin.Slack)
}

// A proxy first used after its manager closed gets ErrDisconnected, as one
// that had connected before.
func TestProxyAfterManagerClose(t *testing.T) {
	ctx := testbin.Context(t)
	m, err := manager.Start(ctx)
	require.NoError(t, err)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	// As a child would receive it: decoded, not yet connected.
	b, files, err := wire.Marshal(d)
	require.NoError(t, err)
	files.Close()
	var fresh *manager.Dict[string, int]
	require.NoError(t, wire.Unmarshal(b, nil, &fresh))
	require.NoError(t, m.Close())
	_, _, err = fresh.Get(ctx, "k")
	assert.ErrorIs(t, err, manager.ErrDisconnected)
	fresh.Close()
}

type sendBackArg struct {
	Out  *pipe.Conn
	Done *pipe.Conn
}

// startAndSend runs in a child: it starts a manager of its own (default
// key), sends the parent a proxy of a Dict on it, and keeps the manager
// up until the parent says it is done.
var startAndSend = process.Register("test.startAndSend", func(ctx context.Context, a sendBackArg) error {
	m, err := manager.Start(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	d, err := manager.NewDict[string, int](ctx, m)
	if err != nil {
		return err
	}
	if err := d.Set(ctx, "from", 7); err != nil {
		return err
	}
	if err := a.Out.Send(d); err != nil {
		return err
	}
	var done bool
	return a.Done.Recv(&done)
})

// A proxy of a manager with the default key (process.AuthKey()) works in
// any process of the program, whichever way it came: here from a child
// that started the manager, to its parent, which never heard of it.
func TestFamilyProxyFromChild(t *testing.T) {
	ctx := testbin.Context(t)
	out, childOut, err := pipe.Pipe()
	require.NoError(t, err)
	defer out.Close()
	done, childDone, err := pipe.Pipe()
	require.NoError(t, err)
	defer done.Close()
	p := process.New(startAndSend, sendBackArg{Out: childOut, Done: childDone})
	require.NoError(t, p.Start())
	childOut.Close()
	childDone.Close()
	var d *manager.Dict[string, int]
	require.NoError(t, out.Recv(&d))
	v, _, err := d.Get(ctx, "from")
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	d.Close()
	require.NoError(t, done.Send(true))
	require.NoError(t, p.Join(ctx))
}

//go:build linux

package manager_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type blockedArg struct {
	Q     *manager.Queue[int]
	Ready *pipe.Conn
}

// getForever reports ready, then blocks in Get; it returns Get's error.
var getForever = process.Register("test.getForever", func(ctx context.Context, a blockedArg) error {
	if err := a.Ready.Send("ready"); err != nil {
		return err
	}
	_, err := a.Q.Get(ctx)
	if errors.Is(err, manager.ErrDisconnected) {
		return fmt.Errorf("disconnected") // the expected end
	}
	return fmt.Errorf("unexpected: %v", err)
})

// TestServerKilled: when the server dies, every pending call, in this
// process and in children, returns ErrDisconnected at once (not at its
// ctx's deadline), and so does every later call.
func TestServerKilled(t *testing.T) {
	m := startToKill(t)
	ctx := testbin.Context(t)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	q, err := manager.NewQueue[int](ctx, m, 0)
	require.NoError(t, err)
	d, err := manager.NewDict[int, int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, l.Acquire(ctx))

	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	child := process.New(getForever, blockedArg{Q: q, Ready: b}, process.WithStderr(os.Stderr))
	require.NoError(t, child.Start())
	b.Close()
	var s string
	require.NoError(t, a.Recv(&s))

	long, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- l.Acquire(long) }()
	go func() { _, err := q.Get(long); errs <- err }()
	go func() {
		for {
			if _, _, err := d.Get(long, 1); err != nil {
				errs <- err
				return
			}
		}
	}()
	waitFor(t, ctx, func() bool { _, conns, _, _ := manager.Stats(ctx, m); return conns == 2 })
	time.Sleep(20 * time.Millisecond) // let the calls park on the server

	begin := time.Now()
	require.NoError(t, manager.ServerProcess(m).Kill())
	for range 3 {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, manager.ErrDisconnected)
		case <-ctx.Done():
			t.Fatal("a pending call did not return after the server died")
		}
	}
	assert.Less(t, time.Since(begin), 2*time.Second)
	err = child.Join(ctx)
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "disconnected", ee.Message)

	// Later calls fail at once too.
	begin = time.Now()
	assert.ErrorIs(t, d.Set(long, 1, 1), manager.ErrDisconnected)
	_, err = manager.NewDict[int, int](long, m)
	assert.ErrorIs(t, err, manager.ErrDisconnected)
	assert.Less(t, time.Since(begin), time.Second)
	assert.Error(t, m.Close(), "Close reports the server's death")
}

// TestWrongAuthKey: a wrong key is refused with ErrAuth, on Connect and
// when the server was started with another key.
func TestWrongAuthKey(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t, manager.WithAuthKey([]byte("sesame")))
	network, addr := m.Address()
	_, err := manager.Connect(ctx, network, addr, []byte("wrong"))
	assert.ErrorIs(t, err, manager.ErrAuth)
	_, err = manager.Connect(ctx, network, addr, nil) // process.AuthKey()
	assert.ErrorIs(t, err, manager.ErrAuth)
	m2, err := manager.Connect(ctx, network, addr, []byte("sesame"))
	require.NoError(t, err)
	require.NoError(t, m2.Close())
	// The server is unharmed by the failed handshakes.
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "k", 1))
}

type loopArg struct {
	D     *manager.Dict[string, int]
	L     *manager.Lock
	Q     *manager.Queue[int]
	Ready *pipe.Conn
}

// busyClient hammers the server from several goroutines (one holds the
// lock, one waits on the queue) until it is killed.
var busyClient = process.Register("test.busyClient", func(ctx context.Context, a loopArg) error {
	if err := a.L.Acquire(ctx); err != nil {
		return err
	}
	go a.Q.Get(ctx)
	for i := range 4 {
		go func() {
			for {
				if _, err := a.D.Add(ctx, fmt.Sprint(i), 1); err != nil {
					return
				}
			}
		}()
	}
	if err := a.Ready.Send("go"); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// TestClientKilledMidCall: a client killed while it has calls in flight,
// a lock held and a Get parked leaves the server healthy: the lock goes
// to the next taker (ErrOwnerDied), the queue keeps its items for live
// getters, and the dead connection is forgotten.
func TestClientKilledMidCall(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	q, err := manager.NewQueue[int](ctx, m, 0)
	require.NoError(t, err)
	for round := range 3 {
		a, b, err := pipe.Pipe()
		require.NoError(t, err)
		p := process.New(busyClient, loopArg{D: d, L: l, Q: q, Ready: b})
		require.NoError(t, p.Start())
		b.Close()
		var s string
		require.NoError(t, a.Recv(&s))
		a.Close()
		time.Sleep(time.Duration(10+round*20) * time.Millisecond)
		require.NoError(t, p.Kill())
		assert.Error(t, p.Join(ctx))

		assert.ErrorIs(t, l.Acquire(ctx), manager.ErrOwnerDied)
		require.NoError(t, l.Release(ctx))
		require.NoError(t, q.Put(ctx, round))
		v, err := q.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, round, v, "the item went to the dead getter")
		waitFor(t, ctx, func() bool { _, conns, _, _ := manager.Stats(ctx, m); return conns == 1 })
	}
	n, err := d.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
}

// Test200Connections: 200 connections at once, each running calls.
func Test200Connections(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	network, addr := m.Address()
	d, err := manager.NewDict[string, int](ctx, m, manager.Named("count"))
	require.NoError(t, err)
	const conns, calls = 200, 5
	ms := make([]*manager.Manager, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := manager.Connect(ctx, network, addr, nil)
			if !assert.NoError(t, err) {
				return
			}
			ms[i] = c
			cd, err := manager.NewDict[string, int](ctx, c, manager.Named("count"))
			if !assert.NoError(t, err) {
				return
			}
			for range calls {
				_, err := cd.Add(ctx, "n", 1)
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	_, open, _, err := manager.Stats(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, conns+1, open)
	v, _, err := d.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, conns*calls, v)
	for _, c := range ms {
		if c != nil {
			require.NoError(t, c.Close())
		}
	}
	waitFor(t, ctx, func() bool { _, conns, _, _ := manager.Stats(ctx, m); return conns == 1 })
}

// TestTooLarge: a value over the message limit is refused by the client
// before anything is sent; the connection stays usable.
func TestTooLarge(t *testing.T) {
	m := start(t, manager.WithMaxMessageSize(64<<10))
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, []byte](ctx, m)
	require.NoError(t, err)
	err = d.Set(ctx, "big", make([]byte, 100<<10))
	assert.ErrorIs(t, err, manager.ErrTooLarge)
	require.NoError(t, d.Set(ctx, "small", []byte("ok")))
	// A reply over the limit is refused by the server with ErrTooLarge.
	for i := range 3 {
		require.NoError(t, d.Set(ctx, fmt.Sprint(i), make([]byte, 30<<10)))
	}
	_, err = d.Items(ctx)
	assert.ErrorIs(t, err, manager.ErrTooLarge)
	v, _, err := d.Get(ctx, "small")
	require.NoError(t, err)
	assert.Equal(t, []byte("ok"), v)
}

//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var setter = process.Register("lock.test.set", func(ctx context.Context, e *lock.Event) error {
	return e.Set()
})

// Python: test_event.
func TestEvent(t *testing.T) {
	e, err := lock.NewEvent()
	require.NoError(t, err)
	defer e.Close()
	assert.False(t, e.IsSet())

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	assert.ErrorIs(t, e.Wait(short), context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(t0), 95*time.Millisecond)
	assert.Less(t, time.Since(t0), testbin.Slack)

	require.NoError(t, e.Set())
	assert.True(t, e.IsSet())
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	assert.NoError(t, e.Wait(done), "Wait on a set Event returns at once, even with an ended ctx")
	require.NoError(t, e.Clear())
	assert.False(t, e.IsSet())

	// Set in a child wakes the parent.
	p := start(t, setter, e)
	assert.NoError(t, e.Wait(testbin.ContextFor(t, 20*time.Second)))
	assert.True(t, e.IsSet())
	join(t, p)
}

type condArg struct {
	C   *lock.Condition
	Mem *os.File
}

// condWaiter counts itself asleep (word 0), waits, and counts itself
// woken (word 1).
var condWaiter = process.Register("lock.test.cond-wait", func(ctx context.Context, a condArg) error {
	w, err := mapShared(a.Mem)
	if err != nil {
		return err
	}
	return condWait(ctx, a.C, w)
})

func condWait(ctx context.Context, c *lock.Condition, w []uint64) error {
	if err := c.Acquire(ctx); err != nil {
		return err
	}
	word(w, 0).Add(1)
	if err := c.Wait(ctx); err != nil {
		return err
	}
	word(w, 1).Add(1)
	return c.Release()
}

// Python: test_notify, test_notify_n, test_notify_all: notify(2) wakes
// exactly 2 of 6 waiters (4 processes, 2 goroutines), NotifyAll the rest.
func TestConditionNotify(t *testing.T) {
	c, err := lock.NewCondition(nil)
	require.NoError(t, err)
	defer c.Close()
	mem := newShared(t)
	w := mustMap(t, mem)
	ctx := testbin.ContextFor(t, 30*time.Second)
	var kids []*process.Process
	for range 4 {
		kids = append(kids, start(t, condWaiter, condArg{C: c, Mem: mem}))
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { assert.NoError(t, condWait(ctx, c, w)) })
	}
	waitFor(t, ctx, "6 waiters", func() bool { return word(w, 0).Load() == 6 })
	// Every waiter counted itself while holding the lock and released it
	// only inside Wait: once we hold the lock, all 6 are waiting.
	require.NoError(t, c.Acquire(ctx))
	require.NoError(t, c.Notify(2))
	require.NoError(t, c.Release())
	waitFor(t, ctx, "2 woken", func() bool { return word(w, 1).Load() >= 2 })
	// Nobody else may wake: give them time to (wrongly) do so.
	time.Sleep(150 * time.Millisecond)
	assert.Equal(t, uint64(2), word(w, 1).Load(), "Notify(2) woke more than 2")

	require.NoError(t, c.Acquire(ctx))
	require.NoError(t, c.NotifyAll())
	require.NoError(t, c.Release())
	waitFor(t, ctx, "all woken", func() bool { return word(w, 1).Load() == 6 })
	for _, p := range kids {
		join(t, p)
	}
	wg.Wait()
}

// Python: test_timeout for Condition.wait, and the owner checks.
func TestConditionWaitTimeoutAndOwner(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	c, err := lock.NewCondition(l)
	require.NoError(t, err)
	defer c.Close()

	assert.ErrorIs(t, c.Wait(testbin.ContextFor(t, time.Second)), lock.ErrNotOwner)
	assert.ErrorIs(t, c.Notify(1), lock.ErrNotOwner)
	assert.ErrorIs(t, c.NotifyAll(), lock.ErrNotOwner)
	assert.ErrorIs(t, c.Release(), lock.ErrNotOwner)
	assert.ErrorIs(t, c.WaitFor(testbin.ContextFor(t, time.Second), func() bool { return true }), lock.ErrNotOwner)

	require.NoError(t, l.Acquire(testbin.ContextFor(t, time.Second)), "the Condition's lock is l")
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	assert.ErrorIs(t, c.Wait(short), context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(t0), 95*time.Millisecond)
	assert.Less(t, time.Since(t0), testbin.Slack)
	ok, err := l.TryAcquire()
	require.NoError(t, err)
	assert.False(t, ok, "Wait returns holding the lock after a timeout")

	// WaitFor with a predicate that never holds.
	short2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	calls := 0
	t0 = time.Now()
	assert.ErrorIs(t, c.WaitFor(short2, func() bool { calls++; return false }), context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(t0), 95*time.Millisecond)
	assert.GreaterOrEqual(t, calls, 1)
	assert.NoError(t, c.Notify(1), "still holding after WaitFor's timeout")
	assert.NoError(t, c.Close())
	assert.NoError(t, l.Release(), "closing the Condition leaves the caller's Lock open")
}

type stateArg struct {
	C   *lock.Condition
	L   *lock.Lock // the same lock as C's, passed on its own as well
	Mem *os.File
}

// stateBumper raises word 0 to 3 in steps under the lock, notifying each
// time; it takes the lock through L, and notifies through C: both name the
// same lock in this process.
var stateBumper = process.Register("lock.test.cond-bump", func(ctx context.Context, a stateArg) error {
	w, err := mapShared(a.Mem)
	if err != nil {
		return err
	}
	for range 3 {
		if err := a.L.Acquire(ctx); err != nil {
			return err
		}
		word(w, 0).Add(1)
		if err := a.C.NotifyAll(); err != nil {
			return fmt.Errorf("notify after acquiring through the Lock: %w", err)
		}
		if err := a.L.Release(); err != nil {
			return err
		}
	}
	return nil
})

// Python: test_waitfor: a predicate made true by another process.
func TestConditionWaitFor(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	c, err := lock.NewCondition(l)
	require.NoError(t, err)
	defer c.Close()
	mem := newShared(t)
	w := mustMap(t, mem)
	ctx := testbin.ContextFor(t, 20*time.Second)
	require.NoError(t, c.Acquire(ctx))
	p := start(t, stateBumper, stateArg{C: c, L: l, Mem: mem})
	assert.NoError(t, c.WaitFor(ctx, func() bool { return word(w, 0).Load() == 3 }))
	assert.NoError(t, c.Release())
	join(t, p)
}

type barrierArg struct {
	B      *lock.Barrier
	Mem    *os.File
	Passes int
	Want   string // "pass" or "broken" for a single wait
}

// lockstep: Python's test_thousand: every pass, each party bumps word 0
// and waits; after the barrier the count must be exactly between the
// passes; word 1 counts index-0 results.
var lockstep = process.Register("lock.test.lockstep", func(ctx context.Context, a barrierArg) error {
	w, err := mapShared(a.Mem)
	if err != nil {
		return err
	}
	parties := uint64(a.B.Parties())
	for i := range uint64(a.Passes) {
		word(w, 0).Add(1)
		idx, err := a.B.Wait(ctx)
		if err != nil {
			return fmt.Errorf("pass %d: %w", i, err)
		}
		if idx < 0 || idx >= int(parties) {
			return fmt.Errorf("pass %d: index %d", i, idx)
		}
		if idx == 0 {
			word(w, 1).Add(1)
		}
		word(w, 2).Add(uint64(idx))
		if n := word(w, 0).Load(); n < parties*(i+1) || n > parties*(i+2) {
			return fmt.Errorf("pass %d: %d arrivals counted, not in lockstep", i, n)
		}
	}
	return nil
})

// Python: test_thousand (1000 passes across 5 processes) and
// test_barrier's single index 0 per generation.
func TestBarrierLockstep(t *testing.T) {
	const parties, passes = 5, 1000
	b, err := lock.NewBarrier(parties)
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, parties, b.Parties())
	mem := newShared(t)
	w := mustMap(t, mem)
	var kids []*process.Process
	for range parties {
		kids = append(kids, start(t, lockstep, barrierArg{B: b, Mem: mem, Passes: passes}))
	}
	for _, p := range kids {
		join(t, p)
	}
	assert.Equal(t, uint64(parties*passes), word(w, 0).Load())
	assert.Equal(t, uint64(passes), word(w, 1).Load(), "exactly one index 0 per pass")
	assert.Equal(t, uint64(passes*(0+1+2+3+4)), word(w, 2).Load(), "indexes 0..parties-1 each pass")
	assert.False(t, b.Broken())
}

var barrierWaiter = process.Register("lock.test.barrier-wait", func(ctx context.Context, a barrierArg) error {
	_, err := a.B.Wait(ctx)
	switch {
	case a.Want == "broken" && errors.Is(err, lock.ErrBroken):
		return nil
	case a.Want == "pass" && err == nil:
		return nil
	}
	return fmt.Errorf("Wait: %v, want %s", err, a.Want)
})

// Python: test_abort: waiters in other processes and later calls all get
// the broken error, until Reset.
func TestBarrierAbort(t *testing.T) {
	b, err := lock.NewBarrier(3)
	require.NoError(t, err)
	defer b.Close()
	ctx := testbin.ContextFor(t, 20*time.Second)
	p1 := start(t, barrierWaiter, barrierArg{B: b, Want: "broken"})
	p2 := start(t, barrierWaiter, barrierArg{B: b, Want: "broken"})
	waitFor(t, ctx, "2 waiting", func() bool { return b.NWaiting() == 2 })
	require.NoError(t, b.Abort())
	join(t, p1)
	join(t, p2)
	assert.True(t, b.Broken())
	assert.Equal(t, 0, b.NWaiting())
	_, err = b.Wait(ctx)
	assert.ErrorIs(t, err, lock.ErrBroken)

	require.NoError(t, b.Reset())
	assert.False(t, b.Broken())
	passAll(t, b, 3)
}

// passAll runs n goroutine parties through one round and checks the
// indexes.
func passAll(t *testing.T, b *lock.Barrier, n int) {
	t.Helper()
	ctx := testbin.ContextFor(t, 20*time.Second)
	idx := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			i, err := b.Wait(ctx)
			assert.NoError(t, err)
			idx <- i
		})
	}
	wg.Wait()
	close(idx)
	seen := map[int]bool{}
	for i := range idx {
		seen[i] = true
	}
	assert.Len(t, seen, n, "distinct indexes")
	for i := range n {
		assert.True(t, seen[i], "index %d", i)
	}
}

// Python: test_timeout: one party's timeout breaks the barrier for all.
func TestBarrierTimeoutBreaksAll(t *testing.T) {
	b, err := lock.NewBarrier(3)
	require.NoError(t, err)
	defer b.Close()
	p := start(t, barrierWaiter, barrierArg{B: b, Want: "broken"})
	waitFor(t, testbin.ContextFor(t, 20*time.Second), "1 waiting", func() bool { return b.NWaiting() == 1 })
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	i, err := b.Wait(short)
	assert.Equal(t, -1, i)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, lock.ErrBroken)
	assert.Less(t, time.Since(t0), testbin.Slack)
	join(t, p)
	assert.True(t, b.Broken())
}

// Python: test_reset: Reset with waiters gives them the broken error and
// leaves the barrier usable.
func TestBarrierReset(t *testing.T) {
	b, err := lock.NewBarrier(3)
	require.NoError(t, err)
	defer b.Close()
	p1 := start(t, barrierWaiter, barrierArg{B: b, Want: "broken"})
	p2 := start(t, barrierWaiter, barrierArg{B: b, Want: "broken"})
	waitFor(t, testbin.ContextFor(t, 20*time.Second), "2 waiting", func() bool { return b.NWaiting() == 2 })
	require.NoError(t, b.Reset())
	join(t, p1)
	join(t, p2)
	assert.False(t, b.Broken())
	assert.Equal(t, 0, b.NWaiting())
	// The next round passes, with a process among the parties.
	p3 := start(t, barrierWaiter, barrierArg{B: b, Want: "pass"})
	ctx := testbin.ContextFor(t, 20*time.Second)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, err := b.Wait(ctx)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	join(t, p3)

	// Python: test_single_thread.
	one, err := lock.NewBarrier(1)
	require.NoError(t, err)
	defer one.Close()
	for range 3 {
		i, err := one.Wait(ctx)
		assert.NoError(t, err)
		assert.Equal(t, 0, i)
	}
	_, err = lock.NewBarrier(0)
	assert.Error(t, err)
}

// Ours: the lock's holder dies while a Condition waiter sleeps; Wait still
// returns holding the lock, and says so.
func TestConditionOwnerDiedDuringWait(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	c, err := lock.NewCondition(l)
	require.NoError(t, err)
	defer c.Close()
	held := mustEvent(t)
	require.NoError(t, c.Acquire(testbin.ContextFor(t, time.Second)))
	p := start(t, holder, holdArg{Lock: l, Held: held}) // blocks until Wait releases
	go func() {
		if held.Wait(testbin.ContextFor(t, 20*time.Second)) == nil {
			p.Kill()
		}
	}()
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = c.Wait(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, lock.ErrOwnerDied)
	<-p.Done()
	assert.NoError(t, c.Notify(1), "Wait returned holding the lock")
	assert.NoError(t, c.Release())
}

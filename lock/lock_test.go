//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var releaser = process.Register("lock.test.release", func(ctx context.Context, l *lock.Lock) error {
	return l.Release()
})

var rlockIntruder = process.Register("lock.test.rlock-intruder", func(ctx context.Context, r *lock.RLock) error {
	if err := r.Release(); !errors.Is(err, lock.ErrNotOwner) {
		return fmt.Errorf("Release by a non-owner process: %v, want ErrNotOwner", err)
	}
	if ok, err := r.TryAcquire(); ok || err != nil {
		return fmt.Errorf("TryAcquire of an RLock held elsewhere: %v, %v", ok, err)
	}
	return nil
})

// Python: test_lock (acquire(False) on a held lock, release of an unlocked
// lock) and a lock released by another process.
func TestLockBasics(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()

	require.NoError(t, l.Acquire(testbin.ContextFor(t, testbin.Slack)))
	ok, err := l.TryAcquire()
	assert.NoError(t, err)
	assert.False(t, ok, "TryAcquire of a held lock")
	assert.NoError(t, l.Release())
	assert.ErrorIs(t, l.Release(), lock.ErrTooManyReleases)

	ok, err = l.TryAcquire()
	assert.NoError(t, err)
	assert.True(t, ok)
	// Python allows any process to release a Lock.
	join(t, start(t, releaser, l))
	ok, err = l.TryAcquire()
	assert.NoError(t, err)
	assert.True(t, ok, "the child's Release did not free the lock")
	assert.NoError(t, l.Release())

	var _ sync.Locker = l
	l.Lock()
	//lint:ignore SA2001 taking and dropping the lock is the test
	l.Unlock()
	assert.Panics(t, l.Unlock, "Unlock of an unlocked Lock")
}

// Python: acquire(timeout=t) returns False after about t; ours: the ctx
// deadline, on a lock held by another process.
func TestLockAcquireDeadline(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	held, err := lock.NewEvent()
	require.NoError(t, err)
	defer held.Close()
	start(t, holder, holdArg{Lock: l, Held: held})
	require.NoError(t, held.Wait(testbin.ContextFor(t, 20*time.Second)))

	ok, err := l.TryAcquire()
	require.NoError(t, err)
	assert.False(t, ok)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = l.Acquire(ctx)
	d := time.Since(t0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, d, 95*time.Millisecond)
	assert.Less(t, d, testbin.Slack)

	// Cancellation (no deadline) ends the wait promptly too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	t0 = time.Now()
	err = l.Acquire(ctx2)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(t0), testbin.Slack)
}

// Ours: a SIGKILLed holder does not keep the lock (Python deadlocks).
func TestLockOwnerKilled(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	holdThenKill(t, holdArg{Lock: l})

	t0 := time.Now()
	err = l.Acquire(testbin.ContextFor(t, 10*time.Second))
	assert.ErrorIs(t, err, lock.ErrOwnerDied)
	assert.Less(t, time.Since(t0), lock.MaxCheck+testbin.Slack)
	ok, err := l.TryAcquire()
	assert.NoError(t, err)
	assert.False(t, ok, "ErrOwnerDied must come with the lock held")
	assert.NoError(t, l.Release())
	assert.NoError(t, l.Acquire(testbin.ContextFor(t, testbin.Slack)), "the lock is healthy again")
	assert.NoError(t, l.Release())
}

// Ours: the holder dies while we are already asleep on the lock: the bounded
// futex waits notice it.
func TestLockOwnerKilledWhileWaiting(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	held, err := lock.NewEvent()
	require.NoError(t, err)
	defer held.Close()
	p := start(t, holder, holdArg{Lock: l, Held: held})
	require.NoError(t, held.Wait(testbin.ContextFor(t, 20*time.Second)))

	got := make(chan error, 1)
	go func() { got <- l.Acquire(testbin.ContextFor(t, 10*time.Second)) }()
	// Let the goroutine reach its futex sleep (if it does not, the test
	// still passes through the other path, which is fine).
	time.Sleep(30 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v while the holder lived", err)
	default:
	}
	require.NoError(t, p.Kill())
	killed := time.Now()
	select {
	case err := <-got:
		assert.ErrorIs(t, err, lock.ErrOwnerDied)
		assert.Less(t, time.Since(killed), lock.MaxCheck+testbin.Slack)
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire still blocked 10 s after the holder was killed")
	}
	assert.NoError(t, l.Release())
}

func TestLockTryAcquireOwnerKilled(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	holdThenKill(t, holdArg{Lock: l})
	ok, err := l.TryAcquire()
	assert.True(t, ok)
	assert.ErrorIs(t, err, lock.ErrOwnerDied)
	assert.NoError(t, l.Release())
}

// Two processes increment a shared counter with a read-then-write under
// the lock: the total is exact.
func TestLockCounterExact(t *testing.T) {
	const n = 20000
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	mem := newShared(t)
	w := mustMap(t, mem)
	goEv, err := lock.NewEvent()
	require.NoError(t, err)
	defer goEv.Close()
	a := start(t, counter, counterArg{L: l, Mem: mem, N: n, Go: goEv})
	b := start(t, counter, counterArg{L: l, Mem: mem, N: n, Go: goEv})
	require.NoError(t, goEv.Set())
	increment(l, word(w, 0), n) // and the parent, a third process
	join(t, a)
	join(t, b)
	assert.Equal(t, uint64(3*n), word(w, 0).Load())
}

// Goroutines of one process: the lock orders Go memory too (run with
// -race: the race detector must see the edges).
func TestLockGoroutines(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	defer l.Close()
	var wg sync.WaitGroup
	total := 0
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				l.Lock()
				total++
				l.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 8*2000, total)
}

// Python: test_rlock (re-acquisition, release by a non-owner, extra
// release).
func TestRLock(t *testing.T) {
	r, err := lock.NewRLock()
	require.NoError(t, err)
	defer r.Close()
	ctx := testbin.ContextFor(t, 5*time.Second)
	require.NoError(t, r.Acquire(ctx))
	require.NoError(t, r.Acquire(ctx))
	ok, err := r.TryAcquire()
	require.NoError(t, err)
	require.True(t, ok)
	// Another process is not the owner.
	join(t, start(t, rlockIntruder, r))
	for range 3 {
		assert.NoError(t, r.Release())
	}
	assert.ErrorIs(t, r.Release(), lock.ErrNotOwner, "extra release")

	// The owner is the process: another goroutine of it re-enters.
	r.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Lock()
		//lint:ignore SA2001 taking and dropping the lock is the test
		r.Unlock()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a goroutine of the owning process could not re-enter")
	}
	r.Unlock()
	assert.ErrorIs(t, r.Release(), lock.ErrNotOwner)
}

func TestRLockHeldElsewhere(t *testing.T) {
	r, err := lock.NewRLock()
	require.NoError(t, err)
	defer r.Close()
	held, err := lock.NewEvent()
	require.NoError(t, err)
	defer held.Close()
	start(t, holder, holdArg{RLock: r, Held: held})
	require.NoError(t, held.Wait(testbin.ContextFor(t, 20*time.Second)))
	assert.ErrorIs(t, r.Release(), lock.ErrNotOwner)
	ok, err := r.TryAcquire()
	assert.NoError(t, err)
	assert.False(t, ok)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	assert.ErrorIs(t, r.Acquire(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(t0), testbin.Slack)
}

func TestRLockOwnerKilled(t *testing.T) {
	r, err := lock.NewRLock()
	require.NoError(t, err)
	defer r.Close()
	holdThenKill(t, holdArg{RLock: r})
	assert.ErrorIs(t, r.Acquire(testbin.ContextFor(t, 10*time.Second)), lock.ErrOwnerDied)
	// Held at depth one: the dead owner's two levels are gone.
	assert.NoError(t, r.Release())
	assert.ErrorIs(t, r.Release(), lock.ErrNotOwner)
}

func mustEvent(t *testing.T) *lock.Event {
	e, err := lock.NewEvent()
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

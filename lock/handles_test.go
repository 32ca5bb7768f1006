//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// everything carries each type in the shapes a handle must travel in: a struct
// field, a slice element, an interface-typed field; Same is Field again and
// Cond is built on Field, so the child must see one lock in all three.
type everything struct {
	Field *lock.Lock
	List  []*lock.Lock
	Same  *lock.Lock
	Cond  *lock.Condition
	Any   any
	R     *lock.RLock
	S     *lock.Semaphore
	BS    *lock.BoundedSemaphore
	E     *lock.Event
	B     *lock.Barrier
}

var useEverything = process.Register("lock.test.everything", func(ctx context.Context, a everything) error {
	if err := a.Field.Acquire(ctx); err != nil {
		return err
	}
	if ok, err := a.Same.TryAcquire(); ok || err != nil {
		return fmt.Errorf("Same.TryAcquire while Field holds: %v, %v (not the same lock?)", ok, err)
	}
	if ok, err := a.List[0].TryAcquire(); ok || err != nil {
		return fmt.Errorf("List[0].TryAcquire while Field holds: %v, %v", ok, err)
	}
	if err := a.Cond.Notify(1); err != nil {
		return fmt.Errorf("Cond.Notify while holding its lock through another handle: %w", err)
	}
	if err := a.Same.Release(); err != nil {
		return err
	}
	sem, ok := a.Any.(*lock.Semaphore)
	if !ok {
		return fmt.Errorf("Any arrived as %T", a.Any)
	}
	if err := sem.Release(); err != nil { // the parent waits on it
		return err
	}
	if err := a.R.Acquire(ctx); err != nil {
		return err
	}
	if err := a.R.Release(); err != nil {
		return err
	}
	if err := a.S.Acquire(ctx); err != nil {
		return err
	}
	if err := a.BS.Release(); !errors.Is(err, lock.ErrTooManyReleases) {
		return fmt.Errorf("BoundedSemaphore over-release in the child: %v", err)
	}
	if _, err := a.B.Wait(ctx); err != nil {
		return err
	}
	return a.E.Set()
})

func TestPassEverything(t *testing.T) { passEverything(t) }

func passEverything(t *testing.T) {
	l, err := lock.NewLock()
	require.NoError(t, err)
	cond, err := lock.NewCondition(l)
	require.NoError(t, err)
	anySem, err := lock.NewSemaphore(0)
	require.NoError(t, err)
	r, err := lock.NewRLock()
	require.NoError(t, err)
	s, err := lock.NewSemaphore(1)
	require.NoError(t, err)
	bs, err := lock.NewBoundedSemaphore(1)
	require.NoError(t, err)
	e, err := lock.NewEvent()
	require.NoError(t, err)
	b, err := lock.NewBarrier(2)
	require.NoError(t, err)

	p := start(t, useEverything, everything{
		Field: l, List: []*lock.Lock{l}, Same: l, Cond: cond, Any: anySem,
		R: r, S: s, BS: bs, E: e, B: b,
	})
	ctx := testbin.ContextFor(t, 20*time.Second)
	require.NoError(t, anySem.Acquire(ctx))
	_, err = b.Wait(ctx)
	require.NoError(t, err)
	require.NoError(t, e.Wait(ctx))
	join(t, p)
	assert.Equal(t, 0, value(t, s), "the child's unit is still out: it exited normally holding it")
	// ... and comes back, since the child is gone.
	ok, err := s.TryAcquire()
	assert.True(t, ok)
	assert.ErrorIs(t, err, lock.ErrOwnerDied)

	for _, c := range []interface{ Close() error }{cond, l, anySem, r, s, bs, e, b} {
		assert.NoError(t, c.Close())
		assert.NoError(t, c.Close(), "a second Close")
	}
}

// Closed objects fail cleanly, and cannot be passed.
func TestClosed(t *testing.T) {
	ctx := testbin.ContextFor(t, 5*time.Second)
	l, err := lock.NewLock()
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Acquire(ctx), lock.ErrClosed)
	assert.ErrorIs(t, l.Release(), lock.ErrClosed)
	_, err = l.TryAcquire()
	assert.ErrorIs(t, err, lock.ErrClosed)
	assert.Panics(t, l.Lock)
	p := process.New(releaser, l)
	assert.ErrorIs(t, p.Start(), lock.ErrClosed)
	_, err = lock.NewCondition(l)
	assert.ErrorIs(t, err, lock.ErrClosed)

	var zero lock.Lock
	assert.ErrorIs(t, zero.Acquire(ctx), lock.ErrClosed)
	assert.NoError(t, zero.Close())

	e, err := lock.NewEvent()
	require.NoError(t, err)
	require.NoError(t, e.Close())
	assert.ErrorIs(t, e.Set(), lock.ErrClosed)
	assert.ErrorIs(t, e.Wait(ctx), lock.ErrClosed)
	assert.False(t, e.IsSet())

	b, err := lock.NewBarrier(2)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	_, err = b.Wait(ctx)
	assert.ErrorIs(t, err, lock.ErrClosed)
	assert.ErrorIs(t, b.Abort(), lock.ErrClosed)
	assert.False(t, b.Broken())

	s, err := lock.NewSemaphore(1)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Acquire(ctx), lock.ErrClosed)
	_, err = s.Value()
	assert.ErrorIs(t, err, lock.ErrClosed)
}

// Close ends this process's waits on the object.
func TestCloseWakesWaiter(t *testing.T) {
	e, err := lock.NewEvent()
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() { got <- e.Wait(testbin.ContextFor(t, 20*time.Second)) }()
	// Whether Close lands before or during the Wait, the result is the
	// same: ErrClosed.
	require.NoError(t, e.Close())
	select {
	case err := <-got:
		assert.ErrorIs(t, err, lock.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not end at Close")
	}
}

// Creating, passing and closing many objects leaves no descriptor and,
// once the garbage collector has run, no mapping behind.
func TestNoFDGrowth(t *testing.T) {
	t.Run("warm-up", passEverything) // whatever the process package opens once
	base := testbin.FDCount(t)
	for range 10 {
		t.Run("pass", passEverything) // its clean-ups drop the last references
	}
	assert.Equal(t, base, testbin.FDCount(t))
	waitFor(t, testbin.ContextFor(t, 10*time.Second), "segments unmapped", func() bool {
		runtime.GC()
		return countSegments(t) == 0
	})
}

func countSegments(t *testing.T) int {
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	return strings.Count(string(maps), "memfd:mpgo-lock-")
}

//go:build linux

package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var semReleaser = process.Register("lock.test.sem-release", func(ctx context.Context, s *lock.Semaphore) error {
	return s.Release()
})

func value(t *testing.T, s interface{ Value() (int, error) }) int {
	t.Helper()
	v, err := s.Value()
	require.NoError(t, err)
	return v
}

// Python: test_semaphore (counting and get_value) and test_timeout.
func TestSemaphoreCounting(t *testing.T) {
	s, err := lock.NewSemaphore(2)
	require.NoError(t, err)
	defer s.Close()
	ctx := testbin.ContextFor(t, 5*time.Second)
	assert.Equal(t, 2, value(t, s))
	require.NoError(t, s.Acquire(ctx))
	assert.Equal(t, 1, value(t, s))
	ok, err := s.TryAcquire()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 0, value(t, s))
	ok, err = s.TryAcquire()
	require.NoError(t, err)
	assert.False(t, ok)

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	assert.ErrorIs(t, s.Acquire(short), context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(t0), 95*time.Millisecond)
	assert.Less(t, time.Since(t0), testbin.Slack)

	require.NoError(t, s.Release())
	require.NoError(t, s.Release())
	assert.Equal(t, 2, value(t, s))
	// An unbounded semaphore may go above its initial value.
	require.NoError(t, s.Release())
	assert.Equal(t, 3, value(t, s))

	_, err = lock.NewSemaphore(-1)
	assert.Error(t, err)
}

// Python: test_bounded_semaphore.
func TestBoundedSemaphore(t *testing.T) {
	s, err := lock.NewBoundedSemaphore(2)
	require.NoError(t, err)
	defer s.Close()
	assert.ErrorIs(t, s.Release(), lock.ErrTooManyReleases)
	require.NoError(t, s.Acquire(testbin.ContextFor(t, testbin.Slack)))
	assert.Equal(t, 1, value(t, s))
	require.NoError(t, s.Release())
	assert.ErrorIs(t, s.Release(), lock.ErrTooManyReleases)
	assert.Equal(t, 2, value(t, s))
}

// A semaphore as a signal between processes: the child releases a unit it
// never acquired and wakes the parent.
func TestSemaphoreSignal(t *testing.T) {
	s, err := lock.NewSemaphore(0)
	require.NoError(t, err)
	defer s.Close()
	p := start(t, semReleaser, s)
	assert.NoError(t, s.Acquire(testbin.ContextFor(t, 20*time.Second)))
	join(t, p)
	assert.Equal(t, 0, value(t, s))
}

var semTaker = process.Register("lock.test.sem-take", func(ctx context.Context, s *lock.Semaphore) error {
	return s.Acquire(ctx)
})

// A signal (a unit released by a process holding none) belongs to the
// process that takes it: when that process exits, nothing comes back.
func TestSemaphoreSignalConsumed(t *testing.T) {
	s, err := lock.NewSemaphore(0)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Release())
	require.NoError(t, s.Release())
	join(t, start(t, semTaker, s))
	join(t, start(t, semTaker, s))
	ok, err := s.TryAcquire()
	assert.NoError(t, err)
	assert.False(t, ok, "a consumed signal came back after its consumer exited")
	assert.Equal(t, 0, value(t, s))
}

// Ours: a SIGKILLed process's units come back; the acquirer that gets one
// sees ErrOwnerDied.
func TestSemaphoreOwnerKilled(t *testing.T) {
	s, err := lock.NewSemaphore(2)
	require.NoError(t, err)
	defer s.Close()
	holdThenKill(t, holdArg{Sem: s})
	assert.Equal(t, 1, value(t, s), "before anyone looks, the dead unit is still out")
	ctx := testbin.ContextFor(t, 10*time.Second)
	require.NoError(t, s.Acquire(ctx), "the unit nobody held")
	t0 := time.Now()
	assert.ErrorIs(t, s.Acquire(ctx), lock.ErrOwnerDied)
	assert.Less(t, time.Since(t0), lock.MaxCheck+testbin.Slack)
	assert.Equal(t, 0, value(t, s))
	require.NoError(t, s.Release())
	require.NoError(t, s.Release())
	assert.Equal(t, 2, value(t, s), "no unit lost, none minted")
}

func TestBoundedSemaphoreOwnerKilled(t *testing.T) {
	b, err := lock.NewBoundedSemaphore(1)
	require.NoError(t, err)
	defer b.Close()
	held := mustEvent(t)
	p := start(t, boundedHolder, boundedHoldArg{S: b, Held: held})
	require.NoError(t, held.Wait(testbin.ContextFor(t, 20*time.Second)))
	ok, err := b.TryAcquire()
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, p.Kill())
	<-p.Done()
	ok, err = b.TryAcquire()
	assert.True(t, ok)
	assert.ErrorIs(t, err, lock.ErrOwnerDied)
	require.NoError(t, b.Release())
	assert.ErrorIs(t, b.Release(), lock.ErrTooManyReleases, "the recovered unit is not counted twice")
}

type boundedHoldArg struct {
	S    *lock.BoundedSemaphore
	Held *lock.Event
}

var boundedHolder = process.Register("lock.test.bounded-hold", func(ctx context.Context, a boundedHoldArg) error {
	if err := a.S.Acquire(ctx); err != nil {
		return err
	}
	a.Held.Set()
	<-ctx.Done()
	return nil
})

// Many goroutines and a child share a few units: never more holders than
// units.
func TestSemaphoreGoroutines(t *testing.T) {
	s, err := lock.NewSemaphore(3)
	require.NoError(t, err)
	defer s.Close()
	ctx := testbin.ContextFor(t, 20*time.Second)
	inside := make(chan struct{}, 100)
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			for range 200 {
				if err := s.Acquire(ctx); err != nil {
					errs <- err
					return
				}
				inside <- struct{}{}
				if n := len(inside); n > 3 {
					errs <- assert.AnError
				}
				<-inside
				if err := s.Release(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 10 {
		assert.NoError(t, <-errs)
	}
	assert.Equal(t, 3, value(t, s))
}

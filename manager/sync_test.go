//go:build linux

package manager_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startAll starts one child per argument and joins them all.
func runChildren[A any](t *testing.T, ctx context.Context, f process.Func[A], args ...A) {
	t.Helper()
	ps := make([]*process.Process, len(args))
	for i, a := range args {
		ps[i] = process.New(f, a)
		require.NoError(t, ps[i].Start())
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
}

type counterArg struct {
	Lock  *manager.Lock
	Count *manager.Value[int]
	N     int
}

// lockedIncrements does N read-modify-write increments under the lock: the
// lock is all that keeps them from losing updates.
var lockedIncrements = process.Register("test.lockedIncrements", func(ctx context.Context, a counterArg) error {
	for range a.N {
		if err := a.Lock.Acquire(ctx); err != nil {
			return err
		}
		v, err := a.Count.Get(ctx)
		if err != nil {
			return err
		}
		if err := a.Count.Set(ctx, v+1); err != nil {
			return err
		}
		if err := a.Lock.Release(ctx); err != nil {
			return err
		}
	}
	return nil
})

func TestLockAcrossProcesses(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	v, err := manager.NewValue(ctx, m, 0)
	require.NoError(t, err)
	a := counterArg{Lock: l, Count: v, N: 50}
	runChildren(t, ctx, lockedIncrements, a, a, a, a)
	got, err := v.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 200, got)
}

type holdArg struct {
	Lock  *manager.Lock
	RLock *manager.RLock
	Ready *pipe.Conn
}

// holdAndBlock takes the locks, says so, and waits to be killed.
var holdAndBlock = process.Register("test.holdAndBlock", func(ctx context.Context, a holdArg) error {
	if err := a.Lock.Acquire(ctx); err != nil {
		return err
	}
	if a.RLock != nil {
		if err := a.RLock.Acquire(ctx); err != nil {
			return err
		}
	}
	if err := a.Ready.Send("held"); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// TestLockHolderKilled: a holder killed by SIGKILL does not leave the lock
// held; the next Acquire gets it with ErrOwnerDied (Python's manager Lock
// would stay locked forever).
func TestLockHolderKilled(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	rl, err := manager.NewRLock(ctx, m)
	require.NoError(t, err)
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	p := process.New(holdAndBlock, holdArg{Lock: l, RLock: rl, Ready: b})
	require.NoError(t, p.Start())
	b.Close()
	var msg string
	require.NoError(t, a.Recv(&msg))

	// While it lives, the lock is held and the RLock is not ours.
	ok, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, rl.Release(ctx), manager.ErrNotOwner)

	// A waiter parked on the lock gets it when the holder dies.
	got := make(chan error, 1)
	go func() { got <- l.Acquire(ctx) }()
	require.NoError(t, p.Kill())
	assert.Error(t, p.Join(ctx))
	select {
	case err := <-got:
		assert.ErrorIs(t, err, manager.ErrOwnerDied)
	case <-ctx.Done():
		t.Fatal("waiter not woken by the holder's death")
	}
	require.NoError(t, l.Release(ctx))
	assert.ErrorIs(t, rl.Acquire(ctx), manager.ErrOwnerDied)
	require.NoError(t, rl.Release(ctx))
	require.NoError(t, rl.Acquire(ctx), "told once")
	require.NoError(t, rl.Release(ctx))
}

type queueArg struct {
	Q     *manager.Queue[int]
	From  int
	Count int
}

var producer = process.Register("test.producer", func(ctx context.Context, a queueArg) error {
	for i := range a.Count {
		if err := a.Q.Put(ctx, a.From+i); err != nil {
			return err
		}
	}
	return nil
})

func TestQueueAcrossProcesses(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	q, err := manager.NewQueue[int](ctx, m, 5) // bounded: producers block
	require.NoError(t, err)
	var ps []*process.Process
	for i := range 3 {
		p := process.New(producer, queueArg{Q: q, From: i * 1000, Count: 40})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	var got []int
	for range 120 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		got = append(got, v)
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
	// FIFO per producer, nothing lost or duplicated.
	for i := range 3 {
		var mine []int
		for _, v := range got {
			if v/1000 == i {
				mine = append(mine, v)
			}
		}
		assert.Len(t, mine, 40)
		assert.True(t, slices.IsSorted(mine), "producer %d out of order: %v", i, mine)
	}
}

// TestQueueGetCancelLosesNothing: a Get whose ctx ends takes no item; the
// next Put's item goes to the next Get.
func TestQueueGetCancelLosesNothing(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	q, err := manager.NewQueue[string](ctx, m, 0)
	require.NoError(t, err)
	for range 20 {
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		_, err := q.Get(short)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	require.NoError(t, q.Put(ctx, "x"))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "x", v)
	n, err := q.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
}

type workerArg struct {
	Q    *manager.Joinable[int]
	Done *manager.List[int]
}

var joinableWorker = process.Register("test.joinableWorker", func(ctx context.Context, a workerArg) error {
	for {
		v, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if v < 0 {
			return a.Q.TaskDone(ctx)
		}
		time.Sleep(time.Millisecond)
		if err := a.Done.Append(ctx, v); err != nil {
			return err
		}
		if err := a.Q.TaskDone(ctx); err != nil {
			return err
		}
	}
})

// TestJoinableWorkers: Join returns only after every item is done (4
// workers, 10 items, as CPython's test_task_done).
func TestJoinableWorkers(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	q, err := manager.NewJoinable[int](ctx, m, 0)
	require.NoError(t, err)
	done, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	var ps []*process.Process
	for range 4 {
		p := process.New(joinableWorker, workerArg{Q: q, Done: done})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	for i := range 10 {
		require.NoError(t, q.Put(ctx, i))
	}
	require.NoError(t, q.Join(ctx))
	n, err := done.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, n, "Join returned before every item was done")
	for range ps {
		require.NoError(t, q.Put(ctx, -1))
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
}

type eventArg struct {
	E     *manager.Event
	Delay time.Duration
}

var setLater = process.Register("test.setLater", func(ctx context.Context, a eventArg) error {
	time.Sleep(a.Delay)
	return a.E.Set(ctx)
})

func TestEventSetByChild(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	e, err := manager.NewEvent(ctx, m)
	require.NoError(t, err)
	p := process.New(setLater, eventArg{E: e, Delay: 100 * time.Millisecond})
	require.NoError(t, p.Start())
	require.NoError(t, e.Wait(ctx))
	set, err := e.IsSet(ctx)
	require.NoError(t, err)
	assert.True(t, set)
	require.NoError(t, p.Join(ctx))
}

type condArg struct {
	C     *manager.Condition
	Woken *manager.Value[int]
	Ready *manager.Semaphore
}

var condWaiter = process.Register("test.condWaiter", func(ctx context.Context, a condArg) error {
	if err := a.C.Acquire(ctx); err != nil {
		return err
	}
	if err := a.Ready.Release(ctx); err != nil {
		return err
	}
	if err := a.C.Wait(ctx); err != nil {
		return err
	}
	if _, err := a.Woken.Add(ctx, 1); err != nil {
		return err
	}
	return a.C.Release(ctx)
})

// TestConditionNotify: Notify(2) wakes exactly 2 of 3 waiting processes,
// NotifyAll the last one (CPython's test_notify_n).
func TestConditionNotify(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	c, err := manager.NewCondition(ctx, m, nil)
	require.NoError(t, err)
	woken, err := manager.NewValue(ctx, m, 0)
	require.NoError(t, err)
	ready, err := manager.NewSemaphore(ctx, m, 0)
	require.NoError(t, err)
	var ps []*process.Process
	for range 3 {
		p := process.New(condWaiter, condArg{C: c, Woken: woken, Ready: ready})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	for range 3 {
		require.NoError(t, ready.Acquire(ctx))
	}
	// Each waiter released the lock inside Wait, so taking it here means
	// all three are waiting.
	require.NoError(t, c.Acquire(ctx))
	require.NoError(t, c.Notify(ctx, 2))
	require.NoError(t, c.Release(ctx))
	waitFor(t, ctx, func() bool { n, _ := woken.Get(ctx); return n == 2 })
	time.Sleep(50 * time.Millisecond)
	n, err := woken.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "Notify(2) woke more than 2")
	require.NoError(t, c.Acquire(ctx))
	require.NoError(t, c.NotifyAll(ctx))
	require.NoError(t, c.Release(ctx))
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
	n, err = woken.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t testing.TB, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the deadline")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type barrierArg struct {
	B       *manager.Barrier
	Indexes *manager.List[int]
	Passes  int
}

var barrierParty = process.Register("test.barrierParty", func(ctx context.Context, a barrierArg) error {
	for range a.Passes {
		i, err := a.B.Wait(ctx)
		if err != nil {
			return err
		}
		if err := a.Indexes.Append(ctx, i); err != nil {
			return err
		}
	}
	return nil
})

// TestBarrierLockstep: 3 processes and the parent pass a 4-party barrier
// 20 times; every pass hands out indexes 0..3 exactly once.
func TestBarrierLockstep(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	b, err := manager.NewBarrier(ctx, m, 4)
	require.NoError(t, err)
	idx, err := manager.NewList[int](ctx, m)
	require.NoError(t, err)
	const passes = 20
	var ps []*process.Process
	for range 3 {
		p := process.New(barrierParty, barrierArg{B: b, Indexes: idx, Passes: passes})
		require.NoError(t, p.Start())
		ps = append(ps, p)
	}
	counts := map[int]int{}
	for range passes {
		i, err := b.Wait(ctx)
		require.NoError(t, err)
		counts[i]++
	}
	for _, p := range ps {
		require.NoError(t, p.Join(ctx))
	}
	all, err := idx.Slice(ctx)
	require.NoError(t, err)
	for _, i := range all {
		counts[i]++
	}
	assert.Equal(t, map[int]int{0: passes, 1: passes, 2: passes, 3: passes}, counts)
}

// TestBarrierTimeoutBreaks: a party whose ctx ends breaks the barrier for
// the others, as a Python timeout does.
func TestBarrierTimeoutBreaks(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	b, err := manager.NewBarrier(ctx, m, 3)
	require.NoError(t, err)
	other := make(chan error, 1)
	go func() { _, err := b.Wait(ctx); other <- err }()
	waitFor(t, ctx, func() bool { n, _ := b.NWaiting(ctx); return n == 1 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = b.Wait(short)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, <-other, manager.ErrBroken)
	broken, err := b.Broken(ctx)
	require.NoError(t, err)
	assert.True(t, broken)
	// Reset with a party waiting breaks that wait too.
	require.NoError(t, b.Reset(ctx))
	go func() { _, err := b.Wait(ctx); other <- err }()
	waitFor(t, ctx, func() bool { n, _ := b.NWaiting(ctx); return n == 1 })
	require.NoError(t, b.Reset(ctx))
	assert.ErrorIs(t, <-other, manager.ErrBroken)
}

// TestAcquireCancelPrompt: an Acquire on a held lock returns ctx's error
// close to the deadline, and the lock is not taken behind its back.
func TestAcquireCancelPrompt(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	require.NoError(t, l.Acquire(ctx))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			begin := time.Now()
			err := l.Acquire(short)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(begin), 2*time.Second)
		}()
	}
	wg.Wait()
	require.NoError(t, l.Release(ctx))
	ok, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "a cancelled Acquire took the lock")
}

// TestSemaphoreAcrossProcesses: a child's Release wakes a parent's
// Acquire.
func TestSemaphoreAcrossProcesses(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	s, err := manager.NewSemaphore(ctx, m, 0)
	require.NoError(t, err)
	p := process.New(releaseSem, s)
	require.NoError(t, p.Start())
	require.NoError(t, s.Acquire(ctx))
	require.NoError(t, p.Join(ctx))
	v, err := s.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, v)
}

var releaseSem = process.Register("test.releaseSem", func(ctx context.Context, s *manager.Semaphore) error {
	time.Sleep(20 * time.Millisecond)
	return s.Release(ctx)
})

// TestLockerPanicsWhenServerGone: sync.Locker has no error result; Lock
// panics rather than pretending to hold the lock.
func TestLockerPanicsWhenServerGone(t *testing.T) {
	m := startToKill(t)
	ctx := testbin.Context(t)
	l, err := manager.NewLock(ctx, m)
	require.NoError(t, err)
	require.NoError(t, manager.ServerProcess(m).Kill())
	manager.ServerProcess(m).Join(ctx)
	assert.Panics(t, func() { l.Lock() })
	err = m.Close()
	var ee *process.ExitError
	assert.True(t, errors.As(err, &ee) && ee.Signal == syscall.SIGKILL, "Close reports the killed server: %v", err)
}

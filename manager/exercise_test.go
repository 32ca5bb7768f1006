//go:build linux

package manager_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/mpgo/multiprocessing/manager"
)

// The exercise functions run every method of one proxy type and return
// the first discrepancy. They run in the test process and, through
// childExercise, in a child process that got the proxies as its argument:
// the same checks prove that proxies work on both sides.

type checker struct{ err error }

// eq records a mismatch (the first one wins).
func (c *checker) eq(what string, got, want any) {
	if c.err == nil && !reflect.DeepEqual(got, want) {
		c.err = fmt.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}

// ok records an unexpected error.
func (c *checker) ok(what string, err error) {
	if c.err == nil && err != nil {
		c.err = fmt.Errorf("%s: %w", what, err)
	}
}

// is records an error that does not match target.
func (c *checker) is(what string, err, target error) {
	if c.err == nil && !errors.Is(err, target) {
		c.err = fmt.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

type point struct {
	X, Y int
	Tags map[string]int
}

func exerciseDict(ctx context.Context, d *manager.Dict[string, int]) error {
	var c checker
	c.ok("Clear", d.Clear(ctx))
	v, ok, err := d.Get(ctx, "missing")
	c.ok("Get missing", err)
	c.eq("Get missing", []any{v, ok}, []any{0, false})
	c.ok("Set a", d.Set(ctx, "a", 1))
	c.ok("Set b", d.Set(ctx, "b", 2))
	c.ok("Set a again", d.Set(ctx, "a", 10))
	v, ok, err = d.Get(ctx, "a")
	c.ok("Get a", err)
	c.eq("Get a", []any{v, ok}, []any{10, true})
	n, err := d.Len(ctx)
	c.ok("Len", err)
	c.eq("Len", n, 2)
	keys, err := d.Keys(ctx)
	c.ok("Keys", err)
	c.eq("Keys in insertion order", keys, []string{"a", "b"})
	c.ok("Update", d.Update(ctx, map[string]int{"c": 3, "b": 20}))
	items, err := d.Items(ctx)
	c.ok("Items", err)
	c.eq("Items", items, map[string]int{"a": 10, "b": 20, "c": 3})
	c.ok("Delete", d.Delete(ctx, "c"))
	c.ok("Delete missing", d.Delete(ctx, "c"))
	got, err := d.SetDefault(ctx, "a", 99)
	c.ok("SetDefault existing", err)
	c.eq("SetDefault existing", got, 10)
	got, err = d.SetDefault(ctx, "d", 4)
	c.ok("SetDefault new", err)
	c.eq("SetDefault new", got, 4)
	v, ok, err = d.Pop(ctx, "d")
	c.ok("Pop", err)
	c.eq("Pop", []any{v, ok}, []any{4, true})
	v, ok, err = d.Pop(ctx, "d")
	c.ok("Pop missing", err)
	c.eq("Pop missing", []any{v, ok}, []any{0, false})
	got, err = d.Add(ctx, "n", 5)
	c.ok("Add to missing", err)
	c.eq("Add to missing", got, 5)
	got, err = d.Add(ctx, "n", -7)
	c.ok("Add", err)
	c.eq("Add", got, -2)
	swapped, err := d.CompareAndSwap(ctx, "n", 3, 4)
	c.ok("CAS mismatch", err)
	c.eq("CAS mismatch", swapped, false)
	swapped, err = d.CompareAndSwap(ctx, "n", -2, 4)
	c.ok("CAS match", err)
	c.eq("CAS match", swapped, true)
	swapped, err = d.CompareAndSwap(ctx, "fresh", 0, 1)
	c.ok("CAS missing key with zero old", err)
	c.eq("CAS missing key with zero old", swapped, true)
	swapped, err = d.CompareAndSwap(ctx, "fresh2", 5, 1)
	c.ok("CAS missing key", err)
	c.eq("CAS missing key", swapped, false)
	items, err = d.Items(ctx)
	c.ok("Items", err)
	c.eq("Items after", items, map[string]int{"a": 10, "b": 20, "n": 4, "fresh": 1})
	return c.err
}

func exerciseDictKinds(ctx context.Context, m *manager.Manager) error {
	var c checker
	f, err := manager.NewDict[int, float64](ctx, m)
	c.ok("NewDict float", err)
	if err != nil {
		return c.err
	}
	defer f.Close()
	_, err = f.Add(ctx, 1, 0.5)
	c.ok("float Add", err)
	x, err := f.Add(ctx, 1, 0.25)
	c.ok("float Add", err)
	c.eq("float Add", x, 0.75)
	s, err := manager.NewDict[string, string](ctx, m)
	c.ok("NewDict string", err)
	defer s.Close()
	c.ok("Set string", s.Set(ctx, "k", "v"))
	_, err = s.Add(ctx, "k", "x")
	c.is("Add on a string", err, manager.ErrNotNumber)
	p, err := manager.NewDict[string, point](ctx, m)
	c.ok("NewDict struct", err)
	defer p.Close()
	pt := point{1, 2, map[string]int{"z": 1, "a": 2, "m": 3}}
	c.ok("Set struct", p.Set(ctx, "p", pt))
	gotp, _, err := p.Get(ctx, "p")
	c.ok("Get struct", err)
	c.eq("Get struct", gotp, pt)
	// Map fields encode with sorted keys, so equal values compare equal.
	swapped, err := p.CompareAndSwap(ctx, "p", point{1, 2, map[string]int{"m": 3, "a": 2, "z": 1}}, point{X: 5})
	c.ok("CAS struct", err)
	c.eq("CAS struct with a map field", swapped, true)
	u, err := manager.NewDict[string, uint64](ctx, m)
	c.ok("NewDict uint64", err)
	defer u.Close()
	c.ok("Set max", u.Set(ctx, "u", 1<<64-1))
	_, err = u.Add(ctx, "u", 1)
	c.is("Add overflow", err, manager.ErrOverflow)
	return c.err
}

func exerciseList(ctx context.Context, l *manager.List[string]) error {
	var c checker
	c.ok("Clear", l.Clear(ctx))
	c.ok("Append", l.Append(ctx, "a"))
	c.ok("Extend", l.Extend(ctx, []string{"b", "c", "d"}))
	c.ok("Insert", l.Insert(ctx, 1, "x"))
	c.ok("Insert past the end", l.Insert(ctx, 100, "end"))
	c.ok("Insert negative", l.Insert(ctx, -100, "start"))
	all, err := l.Slice(ctx)
	c.ok("Slice", err)
	c.eq("Slice", all, []string{"start", "a", "x", "b", "c", "d", "end"})
	v, err := l.Get(ctx, -1)
	c.ok("Get -1", err)
	c.eq("Get -1", v, "end")
	_, err = l.Get(ctx, 7)
	c.is("Get out of range", err, manager.ErrIndex)
	c.ok("Set", l.Set(ctx, 0, "S"))
	v, err = l.Pop(ctx, -1)
	c.ok("Pop", err)
	c.eq("Pop", v, "end")
	v, err = l.Pop(ctx, 0)
	c.ok("Pop 0", err)
	c.eq("Pop 0", v, "S")
	c.ok("Remove", l.Remove(ctx, "x"))
	c.is("Remove missing", l.Remove(ctx, "x"), manager.ErrNotFound)
	i, err := l.Index(ctx, "c")
	c.ok("Index", err)
	c.eq("Index", i, 2)
	_, err = l.Index(ctx, "zz")
	c.is("Index missing", err, manager.ErrNotFound)
	n, err := l.Len(ctx)
	c.ok("Len", err)
	c.eq("Len", n, 4)
	all, err = l.Slice(ctx)
	c.ok("Slice", err)
	c.eq("Slice after", all, []string{"a", "b", "c", "d"})
	return c.err
}

func exerciseValue(ctx context.Context, v *manager.Value[int], a *manager.Array[int], ns *manager.Namespace) error {
	var c checker
	c.ok("Value.Set", v.Set(ctx, 7))
	got, err := v.Get(ctx)
	c.ok("Value.Get", err)
	c.eq("Value.Get", got, 7)
	got, err = v.Add(ctx, 3)
	c.ok("Value.Add", err)
	c.eq("Value.Add", got, 10)
	ok, err := v.CompareAndSwap(ctx, 9, 0)
	c.ok("Value.CAS mismatch", err)
	c.eq("Value.CAS mismatch", ok, false)
	ok, err = v.CompareAndSwap(ctx, 10, 11)
	c.ok("Value.CAS", err)
	c.eq("Value.CAS", ok, true)

	n, err := a.Len(ctx)
	c.ok("Array.Len", err)
	c.eq("Array.Len", n, 3)
	c.ok("Array.Set", a.Set(ctx, 0, 5))
	x, err := a.Get(ctx, 0)
	c.ok("Array.Get", err)
	c.eq("Array.Get", x, 5)
	x, err = a.Add(ctx, -1, 10)
	c.ok("Array.Add", err)
	c.eq("Array.Add", x, 13)
	ok, err = a.CompareAndSwap(ctx, 1, 2, 20)
	c.ok("Array.CAS", err)
	c.eq("Array.CAS", ok, true)
	all, err := a.Slice(ctx)
	c.ok("Array.Slice", err)
	c.eq("Array.Slice", all, []int{5, 20, 13})
	_, err = a.Get(ctx, 3)
	c.is("Array.Get out of range", err, manager.ErrIndex)

	c.ok("Namespace.Set", ns.Set(ctx, "name", "gopher"))
	c.ok("Namespace.Set", ns.Set(ctx, "count", 3))
	var name string
	c.ok("Namespace.Get", ns.Get(ctx, "name", &name))
	c.eq("Namespace.Get", name, "gopher")
	var count int
	c.ok("Namespace.Get", ns.Get(ctx, "count", &count))
	c.eq("Namespace.Get int", count, 3)
	c.is("Namespace.Get missing", ns.Get(ctx, "nope", &count), manager.ErrNoAttribute)
	names, err := ns.Names(ctx)
	c.ok("Namespace.Names", err)
	c.eq("Namespace.Names", names, []string{"name", "count"})
	c.ok("Namespace.Delete", ns.Delete(ctx, "count"))
	c.is("Namespace.Delete missing", ns.Delete(ctx, "count"), manager.ErrNoAttribute)
	return c.err
}

func exerciseQueue(ctx context.Context, q *manager.Queue[int], j *manager.Joinable[string]) error {
	var c checker
	empty, err := q.Empty(ctx)
	c.ok("Empty", err)
	c.eq("Empty", empty, true)
	_, err = q.TryGet(ctx)
	c.is("TryGet empty", err, manager.ErrEmpty)
	c.ok("Put", q.Put(ctx, 1))
	c.ok("TryPut", q.TryPut(ctx, 2))
	full, err := q.Full(ctx)
	c.ok("Full", err)
	c.eq("Full", full, true)
	c.is("TryPut full", q.TryPut(ctx, 3), manager.ErrFull)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	c.is("Put full with deadline", q.Put(short, 3), context.DeadlineExceeded)
	cancel()
	n, err := q.Len(ctx)
	c.ok("Len", err)
	c.eq("Len", n, 2)
	v, err := q.Get(ctx)
	c.ok("Get", err)
	c.eq("Get", v, 1)
	v, err = q.TryGet(ctx)
	c.ok("TryGet", err)
	c.eq("TryGet", v, 2)
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = q.Get(short)
	cancel()
	c.is("Get empty with deadline", err, context.DeadlineExceeded)

	c.ok("Joinable.Put", j.Put(ctx, "a"))
	c.ok("Joinable.Put", j.Put(ctx, "b"))
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	c.is("Join with work left", j.Join(short), context.DeadlineExceeded)
	cancel()
	for range 2 {
		_, err := j.Get(ctx)
		c.ok("Joinable.Get", err)
		c.ok("TaskDone", j.TaskDone(ctx))
	}
	c.is("TaskDone too often", j.TaskDone(ctx), manager.ErrTaskDone)
	c.ok("Join", j.Join(ctx))
	return c.err
}

// syncSet is one of each synchronisation proxy.
type syncSet struct {
	Lock  *manager.Lock
	RLock *manager.RLock
	Sem   *manager.Semaphore
	BSem  *manager.BoundedSemaphore
	Cond  *manager.Condition
	Event *manager.Event
	Bar   *manager.Barrier // one party
}

func exerciseSync(ctx context.Context, s syncSet) error {
	var c checker
	c.ok("Lock.Acquire", s.Lock.Acquire(ctx))
	ok, err := s.Lock.TryAcquire(ctx)
	c.ok("Lock.TryAcquire held", err)
	c.eq("Lock.TryAcquire held", ok, false)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	c.is("Lock.Acquire held, deadline", s.Lock.Acquire(short), context.DeadlineExceeded)
	cancel()
	c.ok("Lock.Release", s.Lock.Release(ctx))
	c.is("Lock.Release unlocked", s.Lock.Release(ctx), manager.ErrTooManyReleases)
	s.Lock.Lock()
	//lint:ignore SA2001 taking and dropping the lock is the test
	s.Lock.Unlock()

	c.ok("RLock.Acquire", s.RLock.Acquire(ctx))
	c.ok("RLock.Acquire again", s.RLock.Acquire(ctx))
	ok, err = s.RLock.TryAcquire(ctx)
	c.ok("RLock.TryAcquire", err)
	c.eq("RLock.TryAcquire by owner", ok, true)
	for range 3 {
		c.ok("RLock.Release", s.RLock.Release(ctx))
	}
	c.is("RLock.Release unheld", s.RLock.Release(ctx), manager.ErrNotOwner)

	val, err := s.Sem.Value(ctx)
	c.ok("Semaphore.Value", err)
	c.eq("Semaphore.Value", val, 2)
	c.ok("Semaphore.Acquire", s.Sem.Acquire(ctx))
	c.ok("Semaphore.Acquire", s.Sem.Acquire(ctx))
	ok, err = s.Sem.TryAcquire(ctx)
	c.ok("Semaphore.TryAcquire", err)
	c.eq("Semaphore.TryAcquire at 0", ok, false)
	c.ok("Semaphore.Release", s.Sem.Release(ctx))
	c.ok("Semaphore.Release", s.Sem.Release(ctx))
	c.ok("Semaphore.Release above initial", s.Sem.Release(ctx)) // unbounded
	c.ok("Semaphore.Acquire", s.Sem.Acquire(ctx))               // back to 2

	c.ok("BoundedSemaphore.Acquire", s.BSem.Acquire(ctx))
	c.ok("BoundedSemaphore.Release", s.BSem.Release(ctx))
	c.is("BoundedSemaphore over-release", s.BSem.Release(ctx), manager.ErrTooManyReleases)

	c.is("Condition.Wait unheld", s.Cond.Wait(ctx), manager.ErrNotOwner)
	c.is("Condition.Notify unheld", s.Cond.Notify(ctx, 1), manager.ErrNotOwner)
	c.ok("Condition.Acquire", s.Cond.Acquire(ctx))
	c.ok("Condition.Notify none waiting", s.Cond.NotifyAll(ctx))
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	c.is("Condition.Wait deadline", s.Cond.Wait(short), context.DeadlineExceeded)
	cancel()
	c.ok("Condition.Release after a timed-out Wait (it holds the lock)", s.Cond.Release(ctx))

	set, err := s.Event.IsSet(ctx)
	c.ok("Event.IsSet", err)
	c.eq("Event.IsSet", set, false)
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	c.is("Event.Wait unset", s.Event.Wait(short), context.DeadlineExceeded)
	cancel()
	c.ok("Event.Set", s.Event.Set(ctx))
	c.ok("Event.Wait set", s.Event.Wait(ctx))
	c.ok("Event.Clear", s.Event.Clear(ctx))

	parties, err := s.Bar.Parties(ctx)
	c.ok("Barrier.Parties", err)
	c.eq("Barrier.Parties", parties, 1)
	idx, err := s.Bar.Wait(ctx)
	c.ok("Barrier.Wait", err)
	c.eq("Barrier.Wait", idx, 0)
	nw, err := s.Bar.NWaiting(ctx)
	c.ok("Barrier.NWaiting", err)
	c.eq("Barrier.NWaiting", nw, 0)
	c.ok("Barrier.Abort", s.Bar.Abort(ctx))
	broken, err := s.Bar.Broken(ctx)
	c.ok("Barrier.Broken", err)
	c.eq("Barrier.Broken", broken, true)
	_, err = s.Bar.Wait(ctx)
	c.is("Barrier.Wait broken", err, manager.ErrBroken)
	c.ok("Barrier.Reset", s.Bar.Reset(ctx))
	_, err = s.Bar.Wait(ctx)
	c.ok("Barrier.Wait after reset", err)
	return c.err
}

//go:build linux

// Package lock provides synchronization primitives shared by processes:
// [Lock], [RLock], [Semaphore], [BoundedSemaphore], [Event], [Condition]
// and [Barrier], with the names and semantics of Python's multiprocessing,
// minus its famous failure: a lock held forever by a process that died.
//
// Create an object in one process and pass it to others inside a process
// argument (as the argument, a struct field, a slice element or an
// interface-typed field); every copy works on the same object:
//
//	var worker = process.Register("worker", func(ctx context.Context, l *lock.Lock) error {
//		if err := l.Acquire(ctx); err != nil && !errors.Is(err, lock.ErrOwnerDied) {
//			return err
//		}
//		defer l.Release()
//		// ... the critical section ...
//		return nil
//	})
//
// # Dead holders
//
// A process that dies holding a [Lock], an [RLock] or units of a
// [Semaphore], SIGKILL included, does not leave them held. The next
// acquirer gets the lock (or the unit) and [ErrOwnerDied] with it, as a
// robust pthread mutex returns EOWNERDEAD: it holds the lock then, and
// should check the state the lock guards, which the dead process may have
// left half-updated. Python's multiprocessing deadlocks here. Closing the
// last handle of an object in a process counts as dying: whatever it still
// holds comes back the same way.
//
// Recovery takes a short while: waiters notice a dead holder after their
// first bounded sleep (2 ms), and then at doubling intervals up to 64 ms.
// [Lock.TryAcquire] and [Semaphore.TryAcquire] check at once.
//
// # How it works
//
// Each object is a small memfd segment mapped into every process that has
// it: nothing in the file system, and gone when the last process closes it
// or exits. A Lock is one 32-bit word in it: taking a free lock is one
// compare-and-swap and releasing it one swap (about 10 ns, no system
// call); waiters sleep in futex(2). The word holds the holder's identity,
// a number (slot) the process drew when it attached to the segment. Each
// process holds an open file description lock (F_OFD_SETLK) on the byte of
// the memfd at its slot, which the kernel drops when the process dies; a
// waiter that has slept long enough asks the kernel (F_OFD_GETLK) whether
// the holder's slot is still locked, and takes the lock over with one
// compare-and-swap if not. Slots are never reused, so unlike a pid they
// cannot come back to life in another process. Every futex sleep has a
// timeout, since a dead holder wakes nobody.
//
// # Owners
//
// The owner of an [RLock], and the holder a [Condition] checks for, is a
// process, not a goroutine: any goroutine of the holding process may
// acquire an RLock again or release it, and a Release from another process
// is [ErrNotOwner]. Go has no goroutine identity on purpose (a lock
// acquired in one goroutine may be released in another, as sync.Mutex
// allows), death is per process, and an explicit owner token would not fit
// [sync.Locker]. To keep goroutines of one process apart as well, put a
// sync.Mutex in front of the shared lock. All handles of one object in a
// process share one attachment, so a Lock received twice (say, directly
// and inside its Condition) is the same lock in both.
//
// A [Lock], as in Python, is not owned: any process may release it. A
// [Semaphore] accounts each unit to the process that took it (that is how
// a dead process's units come back). A Release by a process that holds no
// unit settles one held by another process; when no process holds any, it
// adds a unit that belongs to whoever takes it next, so a consumer of
// signals that exits does not hand them out again ([BoundedSemaphore]:
// [ErrTooManyReleases] instead).
//
// # Waiting
//
// Blocking calls take a [context.Context]: its deadline is Python's
// timeout, and when it ends first the call returns its error, wrapped. A
// free lock is taken even when ctx has already ended (like
// golang.org/x/sync/semaphore). [Condition.Wait] always returns holding
// the lock, as in Python. A [Barrier] wait whose ctx ends breaks the
// barrier for every party, with an error that matches both the ctx error
// and [ErrBroken].
//
// # Caveats
//
//   - Linux only (futex, memfd, OFD locks since 3.15), and /proc must be
//     mounted: a process that receives an object opens the segment again
//     through /proc/self/fd, because a received descriptor shares the
//     sender's open file description, and with it the sender's liveness
//     lock.
//   - The mutexes are not fair: a process that releases and re-acquires at
//     once usually wins against a sleeper. That is what makes them fast
//     under contention.
//   - A Lock acquired by one process and released by another after the
//     first has exited is seen as abandoned by a waiter that looks in
//     between: it gets the lock with ErrOwnerDied.
//   - A goroutine blocked in Acquire of a Semaphore, Event, Condition or
//     Barrier holds an OS thread in futex(2); for Lock and RLock only one
//     goroutine per process sleeps in the kernel, the others park in the Go
//     scheduler.
//   - A Semaphore holds per-process entries for at most 1008 processes at a
//     time, and a Condition at most 1016 waiters; entries of dead processes
//     are reclaimed.
//   - Barrier has no action callable (run it in the party that gets index
//     0) and no default timeout (use ctx).
//   - A segment stays mapped after Close until the garbage collector finds
//     no goroutine can still touch it, so that a use racing with Close
//     reads stale memory instead of faulting. Its descriptor, and with it
//     the process's liveness lock, goes at Close.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package lock

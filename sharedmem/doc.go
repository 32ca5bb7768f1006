//go:build linux

// Package sharedmem provides memory that several processes map at once, for
// data too big to copy through a pipe or a queue: Python's
// multiprocessing.shared_memory ([Memory]) and sharedctypes ([Array],
// [Value], RawArray).
//
// Make an object in one process and pass it to others inside a process
// argument (as the argument or a field of it), a pool Initializer argument,
// or over a unix-socket pipe.Conn. Only a descriptor crosses, whatever the
// size; the receiver maps the same pages, so a write in one process is seen
// by all of them:
//
//	var worker = process.Register("worker", func(ctx context.Context, a *sharedmem.Array[float64]) error {
//		defer a.Close()
//		for i, x := range a.Slice() { ... }
//		return nil
//	})
//
//	a, err := sharedmem.NewArray[float64](1 << 27) // 1 GiB, zeroed
//	p := process.New(worker, a)
//
// # Python mapping
//
//	multiprocessing.Value("q", 0)          sharedmem.NewValue[int64](0)
//	v.value += 1 under v.get_lock()        v.Add(1) (atomic, no lock needed)
//	v.get_lock()                           v.Lock() (a *lock.Lock)
//	multiprocessing.Array("d", n)          sharedmem.NewArray[float64](n)
//	RawArray("d", n)                       NewArray, ignoring its lock (or New + Slice)
//	a[i], a[:]                             a.Slice()[i], a.Slice()
//	SharedMemory(create=True, size=n)      sharedmem.New(n)           (anonymous)
//	SharedMemory(name, create=True, size)  sharedmem.Create(name, size)
//	SharedMemory(name)                     sharedmem.Open(name)
//	shm.buf                                m.Bytes()
//	numpy.ndarray(n, "d", buffer=shm.buf)  sharedmem.Slice[float64](m)
//	shm.close(), shm.unlink()              m.Close(), m.Unlink()
//
// Typecodes are Go types: "b" int8, "B" uint8, "h" int16, "H" uint16, "i"
// int32, "I" uint32, "q" int64, "Q" uint64, "f" float32, "d" float64.
//
// # Anonymous and named blocks
//
// [New], [NewArray] and [NewValue] make anonymous blocks (memfd): nothing
// in any file system, and the memory goes when the last process holding the
// block closes it or exits, however it exits. They never leak.
//
// [Create] and [Open] use named blocks, the files in /dev/shm that POSIX
// shm_open(3) and Python's SharedMemory(name=...) use, so a Go program and
// a Python program can share one block by name (Python's name, without the
// leading "/"). A named block lives until [Memory.Unlink], as in POSIX,
// even when no process has it open: unlink it when done, once, from any
// process:
//
//	m, err := sharedmem.Create("results", 1<<20)
//	if err != nil { ... }
//	defer m.Close()
//	defer m.Unlink() // or leave it for another program, and unlink there
//
// A block left behind by a crashed program is removed with m.Unlink after
// Open, or with rm /dev/shm/NAME.
//
// Python 3.8 to 3.12 register every block a process creates or opens with
// a resource tracker, which unlinks it when that process exits, even
// while other processes still use it (bpo-38119). This package does no such
// thing. A Python program that shares a block with Go must stop its tracker
// from removing it: SharedMemory(name, track=False) on 3.13+, or
// resource_tracker.unregister(shm._name, "shared_memory") before.
//
// # Values and arrays
//
// [Value] operations are atomic between processes: Add and CompareAndSwap
// need no lock (32- and 64-bit integers use the processor's atomic
// instructions, floats a compare-and-swap loop on their bits, and 8- and
// 16-bit types a compare-and-swap on the 32-bit word that holds them
// alone). Uncontended, an Add costs a few nanoseconds. Their Lock is for
// updates that need more than one operation.
//
// [Array.Slice] is plain memory, as Python's Array is: what two processes
// write to one element without taking [Array.Lock] is a race. The lock is
// a lock.Lock, so a process that dies holding it does not leave it held:
// the next Acquire gets it with lock.ErrOwnerDied.
//
// # Caveats
//
//   - A slice from Bytes, Slice or Array.Slice is valid until Close. After
//     Close, while the object is still reachable, its addresses stay
//     reserved and inaccessible, so a stale slice faults (the program
//     crashes with "unexpected fault address") instead of reading or
//     writing memory that was given to something else; once the object is
//     garbage collected they are released. (Past 8192 such reservations at
//     once, Close unmaps at once and this protection lapses.) Do not Close
//     while other goroutines still use the memory.
//   - An object that is never closed stays mapped until the process exits:
//     nothing unmaps memory behind a slice that may still be in use.
//   - Array and Value travel in fields of their own type (*Array[T],
//     *Value[T]), and the receiver's T must match the sender's in kind and
//     size. In an interface-typed field they cannot be rebuilt (the element
//     type does not travel) and decoding fails with an error; a *Memory
//     travels anywhere.
//   - The size of an anonymous block is sealed: no process can shrink it.
//     A named block is an ordinary file, and a process that truncates it
//     makes every other process fault (SIGBUS) when it touches the lost
//     pages, as in C and Python. Blocks in /dev/shm also count against the
//     size of that file system: writing to a named block on a full /dev/shm
//     faults the same way. Pages are allocated when first written, not at
//     Create.
//   - Passing a block costs a descriptor whatever its size, but each
//     process that maps it takes page faults on its first touch of the
//     pages: a process that reads a large block once pays them on that
//     pass.
//   - The race detector sees no shared memory: ordering that goes through
//     a Value or a Slice is invisible to it.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package sharedmem

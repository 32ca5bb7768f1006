//go:build linux

// Package pool provides a fixed-size pool of worker processes, the
// analogue of Python's multiprocessing.Pool, that never hangs when a worker
// dies.
//
// A task is a function registered at package level with [Register]; the
// workers are the same binary, re-executed by package process, and find it
// by name:
//
//	var countPrimes = pool.Register("countPrimes", func(ctx context.Context, r Range) (int, error) {
//		...
//	})
//
//	func main() {
//		process.Init() // first: a worker never gets past this line
//		p, err := pool.New(pool.Workers(4))
//		if err != nil { ... }
//		defer p.Terminate()
//		counts, err := pool.Map(ctx, p, countPrimes, ranges)
//		...
//		p.Close()
//		p.Join(ctx)
//	}
//
// # Calls
//
// [Map] (Python's map) returns every result in order, or the error of the
// lowest-index failed task; [MapAsync] does not wait. [Imap] and
// [ImapUnordered] are iterators (iter.Seq2[R, error]) that yield each
// result, or its error, as soon as it is ready. [Apply] and [ApplyAsync]
// run one task; an [AsyncResult] has Get, Wait, Ready, Successful and Done.
// [OnResult] and [OnError] are Python's callback and error_callback,
// [Progress] reports (done, total) for a progress bar, [Chunksize] sets how
// many items travel together (default: four chunks per worker, as Python).
//
// Arguments and results cross the process boundary as msgpack: exported
// struct fields travel, functions and channels do not. Common scalar types
// (ints, floats, strings, []byte, bool, and scalars in an any) take a fast
// path with no reflection, so a map of a trivial function over 200,000 ints
// runs at millions of tasks per second. Decoding follows the module's
// rules on both paths: a number that does not fit the Go type it is
// decoded into (it would overflow or change sign) is an error, never a
// narrowed value, and fails only its own item; numbers decoded into an any
// are int64 (uint64 above math.MaxInt64) and float64, whatever width was
// sent.
//
// # Failures
//
// A task's error, or its panic, is that task's [*TaskError] (with the
// panic's stack); the worker goes on. A worker that dies while running a
// task (os.Exit, SIGKILL, the OOM killer, a segfault in cgo, a resource
// limit) fails exactly that task with a [*WorkerDiedError] carrying its pid
// and exit code or signal, and is replaced; the tasks it had been given but
// not started go to the other workers, and the results it had computed but
// not yet sent are read from the segment it shares with the parent. Every
// other task completes. This is the pool's reason to exist: Python's Pool
// hangs forever here (bpo-22393), and ProcessPoolExecutor fails every
// pending task and refuses new ones (BrokenProcessPool).
//
// [TaskTimeout] kills and replaces a worker whose task runs too long (the
// task fails with [ErrTimeout]); [MemoryLimit] and [CPUTime] set resource
// limits in each worker before any task runs; [MaxTasksPerChild] replaces
// workers after a number of tasks. Cancelling the ctx of a Map, Imap or
// Apply stops dispatching its tasks, cancels the ctx that its running tasks
// see in the workers, and returns at once.
//
// # Lifecycle
//
// [New] starts every worker, and runs the [Initializer] in each, before it
// returns. [Pool.Close] accepts no more work and lets what is queued
// finish; [Pool.Terminate] kills the workers at once, failing queued and
// running tasks with [ErrTerminated]; [Pool.Join] waits for the workers to
// exit after either. Workers die with the parent, however it dies.
//
// # Design
//
// Each worker has its own connection (a socketpair), so the parent always
// knows which items each worker holds: the lesson of loky and
// ProcessPoolExecutor, whose shared call queue cannot tell which worker
// took which task when one dies. The parent keeps a few milliseconds of work queued
// at each worker, measured per item, so a worker never waits for a round
// trip and long tasks are never hoarded by one worker. A worker writes each
// result into a shared memory segment, together with the index of the item
// it is running, and sends the results from there every millisecond or
// when it runs out of work; after a crash the parent reads the segment to
// recover finished results and to know exactly which item was running.
//
// # Backends
//
// [Open] returns a Pool whose tasks run on a backend (a
// [driver.Runner], such as the cluster module's hosts) instead of on local
// worker processes; every call above works on it unchanged. The pool cuts
// each call into chunks of encoded arguments, keeps at most four per
// worker of the backend running, counts each item's result once (a
// duplicate from a backend's retry is refused), and fails the items a
// backend returns without. [Pool.Runner] is the other half: it runs chunks
// that arrive from elsewhere on this pool's workers, with the same
// encoding, so a chunk made by a caller's pool runs unchanged on a host's.
// Package [driver] holds the interface; users of this package never
// need it.
//
// # Caveats
//
// Tasks must be registered at package level (or in init), in the binary that
// creates the pool: a worker only knows the tasks its own initialisation
// registered. Handles (pipes, queues, locks, files) cannot be task
// arguments; pass them to every worker with [Initializer] (as Python's
// initargs). A result larger than 1 MiB is sent on its own and cannot be
// recovered if its worker dies in that instant. [CPUTime] is counted in
// whole seconds, as the kernel does. A slot that fails to start a worker
// three times in a row for a cause that persists (the program cannot start,
// or exits or fails its Initializer before it is ready) is given up; when
// none is left the pool is broken ([ErrBroken]) and every task, queued or
// new, fails with that error. A worker killed by a signal from outside while
// it starts (SIGKILL, SIGTERM, SIGINT, SIGHUP) does not count: its slot is
// started again after a delay that doubles from 5 ms to 500 ms while the
// kills go on, so that a storm of kills never breaks the pool, which works
// again once the storm is over. A pool that is never closed keeps its
// workers until the program exits; [process.Shutdown] (which a worker
// process runs when its function returns) terminates a pool still running,
// as Python terminates its pools at exit, and lets a closed one finish its
// queued work. Callbacks ([OnResult], [OnError],
// [Progress]) run on the goroutine reading a worker's results: they must not
// block.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package pool

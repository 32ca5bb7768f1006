//go:build linux

// Package queue provides first-in first-out queues shared by processes:
// [Queue], [Joinable] and [Simple], Python's multiprocessing Queue,
// JoinableQueue and SimpleQueue, without their failure modes: a process
// killed at any instant never corrupts a queue for the others, a dead
// consumer does not hang [Joinable.Join], a value that cannot be encoded is
// an error at [Queue.Put], and [Queue.Len] always works.
//
// # Usage
//
// Create a queue in one process and pass it to others inside a process
// argument (a field of a queue type, or the argument itself):
//
//	type Args struct{ Jobs *queue.Queue[Job] }
//
//	var worker = process.Register("worker", func(ctx context.Context, a Args) error {
//		for {
//			job, err := a.Jobs.Get(ctx)
//			if err != nil {
//				return err
//			}
//			if job.Stop {
//				return nil
//			}
//			...
//		}
//	})
//
//	q, err := queue.New[Job](0) // 0: unbounded
//	...
//	p := process.New(worker, Args{Jobs: q})
//	p.Start()
//	q.Put(ctx, Job{...})
//
// Items are values of the type parameter, encoded with msgpack (exported
// struct fields travel). Every queue is safe for concurrent use by
// goroutines and processes.
//
// # Visibility, buffering and exit
//
// An item is in the pipe, visible to every process, when Put returns,
// except when the pipe is full (about 256 items waiting), when its encoding
// exceeds 4 KiB (see below), or while earlier items of the same process are
// still being written. Then the putting process writes it, in order, as
// readers make room: its next Put writes what the pipe takes before its
// own item, and a goroutine of the process takes over when no Put comes
// for a fraction of a millisecond (or at once for an item over 4 KiB, and
// in Flush, Close and at exit). A process holds at most [MaxUnwritten]
// items (and [MaxUnwrittenBytes] bytes) so per queue: beyond that Put waits
// for readers to take some, as a bounded queue's Put does, unless no
// process has read the queue for [PutStall] (then it buffers, as Python's
// put, which never blocks). [Queue.Flush] waits for those items;
// [Queue.Close] waits too, as long as readers make progress (see
// [WithFlushTimeout]), and returns an error matching [ErrNotFlushed], with
// the count, for what it could not write.
//
// A worker process (started by the process package) flushes every queue it
// used when its function returns, before it exits, as long as readers make
// progress (Python's worker waits for its queue's feeder thread, without a
// limit). Items it cannot flush (no process read the queue for the flush
// timeout, 10 s by default) fail the worker: its parent's [process.Process.Join]
// returns an [*process.ExitError] with exit code 1 that counts them and
// matches [ErrNotFlushed] (errors.Is). A main process does the same in
// [process.Shutdown], which returns that error; one that returns from main
// without calling it must Close (or Flush) its queues first, or its
// buffered items are lost.
//
// A [Simple] queue never buffers: its Put returns when the item is in the
// pipe.
//
// # Passing queues to processes
//
// Queues travel only inside process arguments (as in Python, "through
// inheritance"), not through a queue or a pipe.Conn: putting a queue into a
// queue is an encoding error. In a field of a queue type a queue arrives as
// that type; in an interface-typed field it arrives as *Queue[any],
// *Joinable[any] or *Simple[any], because the element type does not travel.
// The sender may close its own queue as soon as Start returns; items it
// buffered stay with it.
//
// # How it works
//
// A queue is two packet-mode pipes (pipe2 with O_DIRECT, see pipe(2)) and a
// memfd shared memory segment. In a packet-mode pipe every write of at most
// PIPE_BUF (4096) bytes is one packet, and every read returns exactly one
// packet; both are atomic. An item whose encoding fits in a packet is
// written with one write and taken with one read, by any number of
// producers and consumers, with no lock: a process killed at any instant has
// either taken a packet or not.
//
// A larger item is cut into chunks of at most 4096 bytes, each a header
// (writer, item, index, count, with a CRC-32C of its own) and a slice of
// the item, written with one writev to the second pipe by one writer at a
// time; a marker packet in the first pipe keeps its place in line. A
// consumer that reads a marker takes the reader lock and reads the chunks,
// each with one readv that puts its data straight into its place in the
// item. The item is whole when it has received chunks 0 to count-1 of one
// writer's item in order: a packet arrives entirely or not at all, so the
// headers alone tell a whole item from a broken one. The writer and reader locks are OFD locks (fcntl F_OFD_SETLK) on
// bytes of the memfd, taken through a description each process opens for
// itself, so the kernel releases them when their holder dies. The chunk
// headers let a reader discard what a dead process left: a torn item (its
// writer died: the writer lock is free and the item incomplete) or a
// headless one (the reader that took its first chunks died).
//
// Len, maxsize and Joinable's unfinished-task count are shared counters in
// the segment, with futex wake-ups for sleepers (every sleep is bounded, and
// re-checks). Each process also keeps, in a slot of the segment guarded by
// its own OFD lock byte, the counts whose fate its death would leave
// uncertain, so that survivors can settle them.
//
// Nothing is created in the file system: the memfd has no name, and
// everything is released when the last process holding the queue closes it
// or exits.
//
// # When a process dies
//
// A process killed at any instant (SIGKILL included) leaves the queue whole
// for the survivors: they get whole, correct items, never an item twice,
// and no operation wedges. What the dead process loses:
//
//   - As a consumer: the item it had taken from the pipe and not yet
//     returned from Get (one per Get in progress), including a large item
//     it was reading. A large item whose marker it had read but whose
//     chunks it had not begun is not lost: its writer announces it again
//     after 100 ms and another consumer takes it. In a Joinable, the tasks
//     it had taken and not marked done are lost too; Join counts them done
//     when it notices the death and returns [ErrTaskLost].
//   - As a producer: the items it had put but not yet written (buffered
//     because the pipe was full, or larger than 4 KiB and waiting for or
//     being written), a partly written large item included, which readers
//     discard: at most [MaxUnwritten] items and [MaxUnwrittenBytes] bytes
//     plus one item while readers take items. Items already in the pipe
//     are unaffected.
//
// Counts are settled on the side that cannot wedge the queue: after a death
// Len may count an item less than there is, and a bounded queue may take an
// item more than maxsize; it never loses room. The items a dead producer
// never wrote leave Len as soon as a process notices the death (Len itself,
// a Put waiting for room, a Join).
//
// # Caveats
//
//   - Order is first-in first-out for each producer as seen by each
//     consumer. Around a process death, or a Get whose ctx ended after it
//     had read a large item's marker, a large item may be taken after items
//     put later.
//   - A Get deadline covers the wait for an item. An item over 4 KiB that
//     has begun to arrive is read to its end while its writer keeps sending
//     (it would otherwise be lost for everybody); a writer that stops for a
//     second after the deadline, or dies, ends it.
//   - Large items are written one at a time across all producers (the
//     chunk pipe holds one item), each handed from its writer to a reader.
//   - A process keeps, per queue, the buffers of its last large items (two
//     encodings and one item read, up to 8 MiB each) for the next ones:
//     moving an item over 4 KiB then allocates nothing but the value Get
//     decodes.
//   - Each queue holds two pipes, of 1 MiB and 256 KiB (F_SETPIPE_SZ; they
//     count against the per-user pipe budget, and where the kernel refuses
//     the 64 KiB default stays: correct, slower). Up to 1024 processes can
//     use one queue.
//   - Linux only (packet-mode pipes, memfd, OFD locks).
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package queue

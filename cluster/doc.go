//go:build linux

// Package cluster provides the toolkit across hosts, on NATS JetStream: an
// embedded NATS server ([Start]), a connection to it or to a real NATS
// cluster ([Connect]), queues with the method set of package queue
// ([OpenQueue], [OpenJoinable]) and shared dicts with the method set of
// manager.Dict ([OpenDict]), plus [Dict.Watch], and a pool whose workers
// run on many hosts: [OpenPool] returns a *pool.Pool on which every call
// of package pool works, fed by the hosts that run [ServePool].
//
// It is a module of its own (github.com/mpgo/multiprocessing/cluster), so
// that programs that stay on one machine do not pull in the NATS server
// (about 15 MB of binary and half a minute of cold compile).
//
// # When to use it
//
// The packages queue, manager and pool work between the processes of one
// machine, over pipes and shared memory: they are much faster and need
// nothing else. Use this package when processes on several hosts share
// work, when queued work must outlive every process that uses it (a queue
// lives in the server, on disk, until [DeleteQueue]), or when a consumer
// that dies must not lose its item ([Joinable] redelivers it). One machine
// can start with the embedded server and move to a real NATS cluster by
// changing the URL given to [Connect].
//
// # Usage
//
//	srv, err := cluster.Start(ctx)             // or run nats-server -js
//	...
//	defer srv.Close()
//	c, err := cluster.Connect(ctx, srv.URL())  // in any process, on any host
//	...
//	defer c.Close()
//	q, err := cluster.OpenQueue[Job](ctx, c, "jobs")
//	...
//	q.Put(ctx, job)
//	job, err := q.Get(ctx)
//
// A queue or dict is opened by name in each process (there is no handle to
// pass): give child processes the URL and the names. Values are msgpack,
// as everywhere in the library.
//
// # Delivery
//
//	call                 local (package queue / manager)        cluster
//	Queue.Put            in the pipe when Put returns, or        unbounded: sent when Put returns, stored
//	                     buffered and flushed at Close/exit      once Flush or Close returns; bounded:
//	                                                             stored when Put returns
//	Queue.Get            at most once: removed when read;        at most once: removed on the server
//	                     lost if the reader is killed after      (confirmed) before Get returns; up to 64
//	                                                             items taken ahead are lost if the process
//	                                                             is killed, given back by Close
//	Joinable.Get         at most once                            at least once: the item stays on the
//	                                                             server until TaskDone; redelivered after
//	                                                             AckWait if its consumer dies or is cut off
//	Joinable.TaskDone    any taken item                          the oldest item this handle took
//	Joinable.Join        waits; ErrTaskLost for items lost       waits; ErrLost for items dropped after
//	                     with a dead process                     MaxDeliver deliveries
//	Dict Add, CAS,       atomic on the manager server            atomic: writes conditioned on the
//	SetDefault, Pop                                              revision read, retried on conflict
//	Dict.Watch           (none)                                  every change after the call, in order
//
// A Joinable consumer that is alive keeps its items: it tells the server
// every AckWait/3. A consumer cut off from the server for longer than
// AckWait loses them to redelivery, and its TaskDone may still reach the
// server later: with Joinable, an item can be processed twice, so make the
// processing idempotent.
//
// # Pools across hosts
//
// [OpenPool] returns a *pool.Pool whose tasks run on the hosts that serve
// the pool with [ServePool]; every call of package pool works on it. A
// host is a process of the same build of the program (tasks resolve by
// their registered name; a host of another build never receives this
// build's tasks) that runs a local pool fed from a JetStream work queue,
// one message per chunk of a call. A host takes only what its workers can
// start within a few milliseconds, and tells the server every AckWait/4
// that it still works on what it holds.
//
// Delivery differs from the local pool in one way: a task runs at least
// once. A task's error, or the death of its worker on a live host
// (*pool.WorkerDiedError), fails that task at once, as locally. A host that
// dies or is cut off has its unfinished tasks delivered again to other
// hosts after AckWait; if it was only stopped or cut off, it may finish
// them too, and the caller keeps the first result per index and drops the
// rest ([Stats] counts them). A task delivered MaxDeliver times without a
// result fails with an error matching [ErrLost]. Cancelling a call, or the
// caller's death, drops its tasks not yet started and cancels the ctx of
// the running ones; [pool.Pool.Terminate] fails them with
// pool.ErrTerminated.
//
//	event                local pool.New              across hosts (OpenPool)
//	task error, panic    *pool.TaskError             the same
//	worker dies          *pool.WorkerDiedError,      the same, on a live host
//	                     at once
//	host dies, cut off   -                           redelivered after AckWait; the
//	                                                 first result per index is kept
//	long task            runs once                   runs once (heartbeats)
//	a task runs          at most once                at least once; ErrLost after
//	                                                 MaxDeliver deliveries
//
// # Security
//
// [Start] on an address other than loopback requires [TLS] (ErrInsecure
// otherwise): a NATS token travels in clear in the connection's CONNECT
// line, so [Token] alone is safe only on loopback. [Connect] refuses to send
// a Token to a host other than loopback without TLS. For a real cluster
// use TLS with NATS user credentials ([Credentials]: a creds file or an NKey
// seed file).
//
// # A real NATS cluster
//
// Run nats-server (version 2.12 or later) with JetStream on each host,
// clustered with routes (three or five servers), with TLS and accounts as
// the NATS documentation describes; then give Connect the servers' URLs,
// separated by commas, with TLS and Credentials. The streams and buckets
// this package creates have one replica; for replicated storage create them
// beforehand (stream MPQ_NAME on subject mpq.NAME with work-queue
// retention, MPQL_NAME on mpql.NAME, bucket MPD_NAME) with the replicas you
// want, or raise them with the nats command-line tool: Open uses what
// exists.
//
// # Caveats
//
//   - An item, a dict value and a key are limited by the server's payload
//     limit (max_payload, 1 MiB by default): Put of a larger item is an
//     error matching queue.ErrTooLarge that names the limit.
//   - The server writes to disk at once but forces the data to stable
//     storage (fsync) only every two minutes by default: a crash of a
//     process, or of the server process, loses nothing, but a crash of the
//     whole machine (power, kernel) can lose what was written since the last
//     sync. Servers run with sync_interval: always do not, at a cost in
//     speed. A graceful Close keeps everything.
//   - Len, Empty, Full, Keys, Items and Dict.Len ask the server: each is a
//     round trip, and the dict ones read every key.
//   - MaxDeliver is enforced by the Get that would receive an item once too
//     often: it drops the item, records it for Join and takes the next one.
//     Until some process calls Get, an item whose last consumer died stays
//     counted as not done.
//   - A bounded Joinable counts the items taken and not yet done: they are
//     still on the server.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package cluster

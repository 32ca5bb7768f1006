//go:build linux

// Package manager provides shared objects held by a server process and
// used through proxies from any number of processes, on this machine or
// over TCP: the analogue of Python's multiprocessing.managers
// (SyncManager, BaseManager.register, remote managers).
//
// # Servers and connections
//
// [Start] runs a server in a child process (a daemon child: it dies with
// this process) on a unix socket in a private directory, and connects to
// it. [Connect] reaches a running server by address; [Serve] runs one in
// the calling process until its ctx ends, typically on TCP for other
// machines. Every connection proves it knows the authkey with the pipe
// package's handshake (Python-compatible); the default key is
// process.AuthKey(), which child processes inherit. [Manager.Close] stops
// a started server, or disconnects.
//
//	m, err := manager.Start(ctx)
//	defer m.Close()
//	hits, err := manager.NewDict[string, int](ctx, m)
//	n, err := hits.Add(ctx, "home", 1) // atomic on the server
//
// # Proxies
//
// Each constructor creates an object on the server and returns its proxy;
// with [Named] it finds the object of that name instead, creating it the
// first time, so that unrelated processes share it.
//
//	Python                         Go
//	manager.dict()                 NewDict[K, V]   Get Set Delete Len Keys Items Update Clear SetDefault Pop Add CompareAndSwap
//	manager.list()                 NewList[T]      Append Extend Insert Get Set Pop Remove Index Len Slice Clear
//	manager.Namespace()            NewNamespace    Get Set Delete Names
//	manager.Value(t, v)            NewValue[T]     Get Set Add CompareAndSwap
//	manager.Array(t, seq)          NewArray[T]     Get Set Len Slice Add CompareAndSwap
//	manager.Queue(n)               NewQueue[T]     Put TryPut Get TryGet Len Empty Full
//	manager.JoinableQueue(n)       NewJoinable[T]  Queue's, TaskDone Join
//	manager.Lock(), RLock()        NewLock, NewRLock             Acquire TryAcquire Release Lock Unlock
//	manager.Semaphore(n), Bounded… NewSemaphore, NewBoundedSemaphore (and Value)
//	manager.Condition(lock)        NewCondition    lock methods, Wait WaitFor Notify NotifyAll
//	manager.Event()                NewEvent        Set Clear IsSet Wait
//	manager.Barrier(n)             NewBarrier      Wait Abort Reset Broken NWaiting Parties
//	BaseManager.register(T)        Register, NewObject → *Proxy  Call
//
// Every method takes a ctx and is one round trip; the blocking ones
// (Queue.Get and Put, Acquire, the Waits, Joinable.Join, Proxy.Call) are
// cancelled on the server when ctx ends and return ctx's error, with the
// object unchanged (a Condition.Wait still returns holding its lock, and
// a Barrier breaks, as in Python). Every proxy is safe for concurrent use
// and has Close, which gives its reference back.
//
// # Values
//
// Keys, values and items travel as msgpack; the server stores the encoded
// bytes and never decodes them into Go types. So equality on the server
// (Dict keys, CompareAndSwap, List.Remove and List.Index) is equality of
// encodings: use one Go type per key or value everywhere (an int and a
// float64 1 differ). Integers encode minimally whatever their Go type,
// and the server sorts map entries, so equal values do compare equal.
// Dict.Add, Value.Add and Array.Add add on the server: integers exactly
// ([ErrOverflow] past int64 and uint64), floats as float64, or float32
// when the delta is a float32; a missing key starts from zero. They
// replace the `d[k] += 1` that Python users must wrap in a lock.
//
// # Passing proxies
//
// A proxy is a handle: pass it to a child process as (part of) its
// argument, send it over a pipe or a queue, or store it as a value of
// another shared object, and it arrives working; a proxy read back from a
// Dict or List is a proxy (nested shared objects). Decoded into an
// interface-typed value, a proxy is a generic [*Proxy].
//
// A proxy never carries an authkey. One that arrives in a process with no
// connection to its server dials one on first use, but only to a manager
// the process knows, with the key it knows for it: one it started,
// connected to or serves, one its parent knew when it started the process
// (children inherit the table, sealed under process.AuthKey(), through the
// MPGO_MANAGERS environment variable), or one named with [Allow]. A proxy
// of a manager whose key is process.AuthKey() (the default) also carries
// an HMAC of the manager's address under that key, which every process of
// the program can check and nobody else can make: such proxies work in
// any process of the program, however they got there (a queue from a
// child to its parent, say). A proxy of any other manager fails its first
// call with [ErrUnknownManager], naming the address, and nothing is
// dialled: whoever can send this process a proxy (a pipe peer, anyone with
// the key of a manager it reads values from) can neither learn a key nor
// make it present one to an address of their choosing.
//
// # Object lifetime
//
// An object lives while something refers to it: a proxy in some process,
// a stored value holding a proxy to it, a name, or a proxy in transit to
// another process. Precisely: the server counts references per
// connection; a connection gets one each time the server hands it the
// object, and gives them back when the last proxy of that object in the
// process is closed or garbage-collected. A connection that closes, by
// Close or because its process died, gives back everything it held. A
// proxy sent outside the manager's own values carries a transfer token
// that keeps the object alive until the receiver first uses it, or until
// the sender's connection closes. Named objects live until the server
// stops. Objects that refer to each other in a cycle are not freed.
//
// # Speed
//
// Calls are multiplexed: each request carries an id, so any number of
// goroutines share one connection, their requests and replies batched into
// shared writes and reads, and a lone caller reads its own reply (no
// reader goroutine, no thread handoff). One process's goroutines together
// reach several times Python's per-client rate; a single caller's
// round trip costs little more than the socket's.
//
// # Failure
//
// When the server dies, every call in flight and every later one returns
// [ErrDisconnected] at once. A wrong authkey is [ErrAuth]. A malformed
// request gets an [ErrBadRequest] reply, or its connection is closed when
// it cannot even be read; a frame over the size limit closes its
// connection before anything is allocated for it; the server goes on
// serving everyone else. A client that dies mid-call leaves the server
// healthy: its parked calls are dropped, its references given back, the
// locks it held released (the next Acquire reports [ErrOwnerDied]), and a
// Barrier it waited at broken.
//
// # Security
//
// The authkey handshake guards every connection, the default socket
// directory is private to the user (0700), serving TCP with an empty key
// is refused ([ErrNoAuthKey]), messages are bounded
// ([WithMaxMessageSize]), stored values are validated msgpack, and
// [Proxy.Call] reaches only the exported methods of types registered with
// [Register] in the server's binary. Anyone who has the authkey can call
// anything on the server, as in Python. Proxies carry no authkey (see
// Passing proxies).
//
// Peers without the key cost little: each handshake runs in a goroutine
// of its own, for at most [pipe.HandshakeTimeout] (10 s), and at most
// [pipe.MaxPendingHandshakes] (256) are held at once, the oldest dropped
// first when more arrive, so idle connections never lock legitimate
// clients out. A client with the key makes the server hold, beyond the
// objects it stores (which nothing bounds but memory, as in Python), the
// frame being read and the replies not yet written: the server reads one
// frame at a time per connection, stops running a batch's requests while
// a message's worth of replies waits, and closes a connection that
// announces a frame over the limit without reading it: about twice the
// message size limit, 128 MiB at the default. Memory freed after large
// frames or values is given back to the system within about 0.1 s.
//
// Decoding a value allocates more than its size, most of all for maps
// (an empty map is one byte of msgpack): a reply value whose maps would
// take more than 32 times its size (plus 1 MiB) to decode, counting 64
// bytes a map and 32 a pair, is refused with [ErrTooLarge].
//
// # Caveats
//
//   - Ownership (RLock, Condition, the dead-holder check of locks) is per
//     connection: the goroutines of one process that share a Manager are
//     one owner, so an RLock does not exclude them from each other.
//   - A Dict key may not hold a proxy; two Go types that encode alike are
//     the same key.
//   - A call whose ctx ends still waits for the server's answer (a
//     blocking call after asking the server to cancel it), so that no
//     effect goes unreported; a server silent for 0.5 s after that is
//     presumed hung (stopped, not dead) and the connection is closed:
//     the call returns ctx's error and ErrDisconnected, within its ctx
//     plus 0.5 s. Condition.Wait is the exception: it returns holding the
//     lock, however long that takes after its ctx ends.
//   - Not wire-compatible with Python's managers (which speak pickle);
//     only the authkey handshake is Python's.
//   - A started server dies with this process, but only Close removes
//     its socket directory: a process that exits without Close (or is
//     killed) leaves it in the temporary directory, holding a dead socket.
//   - Arguments and results of Proxy.Call are plain values; proxies inside
//     them are not supported. Methods of one registered object run one at
//     a time.
//   - A nested proxy to another manager's object keeps that object alive
//     only until the value is first read.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package manager

//go:build linux

// Package pipe provides message connections between processes: the analogue
// of Python's multiprocessing.Pipe and multiprocessing.connection.
//
// [Pipe] returns a duplex pair (a unix socketpair) and [Simplex] a one-way
// pair (an OS pipe). A [Conn] carries whole messages: [Conn.Send] and
// [Conn.Recv] encode values as msgpack; [Conn.SendBytes] and
// [Conn.RecvBytes] carry raw bytes. Either end can be passed to a child
// process in its argument.
//
// [Listen] and [Dial] connect processes over unix or TCP sockets with an
// authkey handshake.
//
// # Python compatibility
//
// The framing (a 4-byte big-endian length, with Python's escape for
// messages of 2 GiB and more) and the authkey handshake (the 3.12+
// "{sha256}" challenge and the HMAC-MD5 one of 3.11 and earlier) are
// byte-compatible with multiprocessing.connection, so a Go Listener serves
// a Python Client and a Go Dial reaches a Python Listener. Bytes travel
// unchanged both ways; Send's msgpack payloads are readable by Python's
// msgpack package (Python's own send/recv use pickle).
//
// # Decoding
//
// Recv decodes by the rules every package of the module shares:
//
//   - A number is decoded into a Go integer or float32 only if it fits: one
//     that would overflow or change sign is a [*DecodeError] ("cannot
//     decode number 100000 into Go value of type int8: ..."), as
//     encoding/json reports it, and so is a value of another kind (a
//     string where an int is expected).
//   - Into an interface (any), and at every depth inside one, integers
//     arrive as int64 (uint64 only above math.MaxInt64), floats as
//     float64, maps as map[string]any (map[any]any when a key is not a
//     string), arrays as []any: a received 1 equals int64(1) whatever
//     width was sent.
//   - A map received into a struct must name at least one of its fields
//     (a map of which no key does is a [*DecodeError]: a different struct
//     type was sent); unknown keys beside known ones are skipped, as in
//     encoding/json.
//   - Only exported fields travel. Sending a struct that has fields but
//     none exported is an error (as in encoding/gob), rather than a zero
//     value on arrival.
//   - Decoding is bounded: before decoding, Recv estimates what the value
//     will take from the message and the receiving type, and refuses a
//     message that would take more than 32 bytes per message byte plus
//     64 MiB, with an error wrapping [ErrDecodeBudget]. Typed values and
//     records stay far below it; a large message of tiny maps decoded into
//     any (Go maps cost 50 to 350 bytes each) is what it refuses.
//
// A message that fails to decode is consumed; the Conn stays usable.
//
// # Limits and bad input
//
// A message over the size limit ([Conn.SetMaxMessageSize], default
// [DefaultMaxMessageSize]) is refused by its header before any memory is
// allocated, and skipped (with the descriptors it carried), or, after
// [Conn.RefuseOversize], ends the connection unread. A truncated
// message, a malformed header, a value that does not decode and a failed
// handshake are errors, never panics. During the handshake a message is at
// most 256 bytes, as in Python, so a peer that has not proved it knows the
// key cannot make [Listener.Accept] or [Dial] allocate what a header
// announces.
//
// # Memory
//
// [Conn.RecvBytes] and [Conn.Recv] of a large []byte hand the caller the
// storage the message was received into, without a copy. When the program
// no longer references such a message (between 64 KiB and 4 MiB), the
// garbage collector reports it and its storage receives a later message of
// about the same size instead of being freed: a stream of large messages
// then costs few allocations and few collections, as in Python, where a
// dropped bytes object's memory goes straight to the next one. Storage still
// referenced through any slice of it is never reused. At most 16 MiB per
// process is kept this way, and storage no message takes within two
// collections is freed. The slice's capacity is its length. Do not set a
// finalizer on it (runtime.SetFinalizer panics: it has one).
//
// # Caveats
//
//   - A received message takes at most 4 MiB before its bytes arrive; a
//     larger one grows as they do, so a peer that announces a large message
//     makes the receiver hold at most twice what it really sent. Lower the
//     limit on a Conn that faces peers you do not trust.
//   - A Conn reads ahead into a buffer. Passing it to another process while
//     that buffer holds data is an error (the data could not go along):
//     receive it first.
//   - Handles (Conns, files, sockets, queues, locks) travel only over unix
//     sockets (Pipe, Listen("unix", ...)); Send fails on other kinds. If
//     the kernel drops descriptors (the process is out of them), the Conn
//     stops with [ErrBadFrame] rather than hand a value the wrong ones.
//   - A value that contains itself cannot be sent: Send returns an error.
//   - Closing a Conn wakes a [Conn.Poll] on it (which returns [ErrClosed],
//     as Python's poll raises on a closed connection) and a [Wait] that
//     includes it (which returns it ready; its Recv reports ErrClosed).
//   - [Listener.Accept] returns connections whose handshake is done: from
//     the first Accept on, the Listener accepts in the background and runs
//     each handshake in a goroutine of its own, at most
//     [MaxPendingHandshakes] at once (the oldest dropped first when more
//     arrive) and each for at most [HandshakeTimeout], so a silent peer
//     delays nobody. Accept's ctx bounds only its own wait.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package pipe

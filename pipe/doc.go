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
// # Caveats
//
//   - A message within the limit is allocated at the size its header
//     announces when the header arrives: lower the limit on a Conn that
//     faces peers you do not trust.
//   - A Conn reads ahead into a buffer. Passing it to another process while
//     that buffer holds data is an error (the data could not go along):
//     receive it first.
//   - Handles (Conns, files, sockets, queues, locks) travel only over unix
//     sockets (Pipe, Listen("unix", ...)); Send fails on other kinds. If
//     the kernel drops descriptors (the process is out of them), the Conn
//     stops with [ErrBadFrame] rather than hand a value the wrong ones.
//   - A value that contains itself cannot be sent: Send returns an error.
//   - [Conn.Poll] and [Wait] on a Conn that another goroutine closes at
//     the same time may poll a descriptor number reused in between (as in
//     Python); Recv then reports [ErrClosed].
//   - [Listener.Accept] returns connections whose handshake is done: from
//     the first Accept on, the Listener accepts in the background and runs
//     each handshake in a goroutine of its own, at most
//     [MaxPendingHandshakes] at once (the oldest dropped first when more
//     arrive) and each for at most [HandshakeTimeout], so a silent peer
//     delays nobody. Accept's ctx bounds only its own wait.
package pipe

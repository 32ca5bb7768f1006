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
// allocated, and skipped. A truncated message, a malformed header, a value
// that does not decode and a failed handshake are errors, never panics.
package pipe

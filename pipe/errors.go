//go:build linux

package pipe

import (
	"errors"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/wire"
)

var (
	// ErrAuth reports a failed authkey handshake: the peer's digest was
	// wrong, our digest was rejected, or the peer spoke something else.
	ErrAuth = errors.New("pipe: authentication failed")
	// ErrBufferTooShort matches a *BufferTooShortError from RecvBytesInto.
	ErrBufferTooShort = errors.New("pipe: buffer too short")
	// ErrClosed is returned by every method of a Conn or Listener after Close.
	ErrClosed = errors.New("pipe: connection closed")
	// ErrTooLarge reports a message over the maximum message size
	// (SetMaxMessageSize). A received one is refused by its header, before
	// any memory is allocated for it, and skipped: the connection stays
	// usable.
	ErrTooLarge = errors.New("pipe: message too large")
	// ErrBadFrame reports a frame header no sender could have written (a
	// negative length other than the large-message escape). The stream
	// cannot be trusted after it, so the connection refuses further reads.
	ErrBadFrame = errors.New("pipe: malformed frame")
	// ErrReadOnly is returned by Send on the read end of a Simplex pipe.
	ErrReadOnly = errors.New("pipe: connection is read-only")
	// ErrWriteOnly is returned by Recv on the write end of a Simplex pipe.
	ErrWriteOnly = errors.New("pipe: connection is write-only")
	// ErrDecodeBudget reports a message that would decode into more memory
	// than the decode budget allows (see the package doc). The message is
	// consumed; the connection stays usable.
	ErrDecodeBudget = wire.ErrBudget
)

// DecodeError reports a received value that does not fit the Go type it
// is decoded into: a number out of the type's range, a value of another
// kind, a map that names no field of the struct it is received into. Its
// message names what was sent, the Go type, and what to do. Queues,
// managers, pools and process arguments report the same type.
type DecodeError = wire.DecodeError

// BufferTooShortError is returned by RecvBytesInto when the message does not
// fit the buffer. The message has been consumed; it is in Message.
type BufferTooShortError struct {
	Message []byte
}

func (e *BufferTooShortError) Error() string {
	return fmt.Sprintf("pipe: buffer too short for a %d-byte message", len(e.Message))
}

// Is makes errors.Is(err, ErrBufferTooShort) true.
func (e *BufferTooShortError) Is(target error) bool { return target == ErrBufferTooShort }

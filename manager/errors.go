//go:build linux

package manager

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/queue"
)

var (
	// ErrAuth reports a failed authkey handshake (a wrong key on either
	// side). It is pipe.ErrAuth.
	ErrAuth = pipe.ErrAuth
	// ErrClosed is returned by a proxy after its Close, and by every proxy
	// of a Manager after the Manager's Close.
	ErrClosed = errors.New("manager: closed")
	// ErrDisconnected reports that the connection to the server is gone:
	// the server exited or was killed, or the network failed. Every call
	// on that connection, pending or new, returns it at once.
	ErrDisconnected = errors.New("manager: connection to the manager server lost")
	// ErrNoObject reports a shared object that no longer exists on the
	// server (nothing referred to it any more, so it was freed).
	ErrNoObject = errors.New("manager: shared object no longer exists")
	// ErrWrongKind reports a proxy of one kind used for an object of
	// another (a Named List opened as a Dict, say).
	ErrWrongKind = errors.New("manager: shared object is of another kind")
	// ErrBadRequest is the server's answer to a request it cannot parse.
	ErrBadRequest = errors.New("manager: malformed request")
	// ErrTooLarge reports a request or reply over the message size limit
	// (WithMaxMessageSize; nothing was sent), or a value whose maps would
	// take more than 32 times its size to decode (see Security in the
	// package documentation).
	ErrTooLarge = errors.New("manager: message too large")
	// ErrUnknownManager is returned by the first call of a proxy received
	// from elsewhere (a pipe, a queue, another manager's value) whose
	// manager this process does not know: proxies carry no authkey, and
	// this process connects only where it was told to (see Allow).
	ErrUnknownManager = errors.New("manager: proxy of a manager this process does not know")
	// ErrNoAuthKey is returned by Serve for a TCP address with an empty
	// authkey: anyone who can reach the port could run calls.
	ErrNoAuthKey = errors.New("manager: serving TCP needs a non-empty authkey")

	// ErrIndex reports a List or Array index out of range.
	ErrIndex = errors.New("manager: index out of range")
	// ErrNotFound is returned by List.Remove and List.Index for a value
	// that is not in the list (Python's ValueError).
	ErrNotFound = errors.New("manager: value not in list")
	// ErrNotNumber is returned by Add on a stored value or delta that is
	// not a number.
	ErrNotNumber = errors.New("manager: value is not a number")
	// ErrOverflow is returned by an integer Add whose sum fits neither
	// int64 nor uint64.
	ErrOverflow = errors.New("manager: integer overflow")
	// ErrNoAttribute is returned by Namespace.Get for a name never set.
	ErrNoAttribute = errors.New("manager: no such attribute")

	// ErrEmpty is returned by TryGet on an empty Queue. It is
	// queue.ErrEmpty, so one errors.Is test covers both kinds of queue.
	ErrEmpty = queue.ErrEmpty
	// ErrFull is returned by TryPut on a full bounded Queue
	// (queue.ErrFull).
	ErrFull = queue.ErrFull
	// ErrTaskDone is returned by Joinable.TaskDone called more often than
	// items were put (queue.ErrTaskDone).
	ErrTaskDone = queue.ErrTaskDone

	// ErrOwnerDied is returned by an Acquire that got the lock, but whose
	// last holder's connection closed (its process died) while holding it.
	// The caller holds the lock; the data it guards may be inconsistent.
	// It is lock.ErrOwnerDied, as are the next three for their lock
	// package namesakes.
	ErrOwnerDied = lock.ErrOwnerDied
	// ErrNotOwner is returned by RLock.Release, Condition.Wait and
	// Condition.Notify from a process that does not hold the lock.
	ErrNotOwner = lock.ErrNotOwner
	// ErrTooManyReleases is returned by Release of an unlocked Lock and by
	// a BoundedSemaphore released above its initial value.
	ErrTooManyReleases = lock.ErrTooManyReleases
	// ErrBroken is returned by Barrier.Wait on a broken barrier (aborted,
	// reset while waiting, or a party's wait ended early).
	ErrBroken = lock.ErrBroken

	// ErrNoType is returned by NewObject for a type name never passed to
	// Register in the server's binary.
	ErrNoType = errors.New("manager: type not registered")
	// ErrNoMethod is returned by Proxy.Call for a method that is not an
	// exported method of the object (or has arguments that do not fit).
	ErrNoMethod = errors.New("manager: no such exported method")
	// ErrRemote matches every *RemoteError: a registered object's method
	// returned an error or panicked.
	ErrRemote = errors.New("manager: remote method failed")
)

// RemoteError is the error or panic of a registered object's method,
// carried back from the server.
type RemoteError struct {
	Method  string
	Message string // the error text, or the panic value and stack
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("manager: remote %s: %s", e.Method, e.Message)
}

// Is makes errors.Is(err, ErrRemote) true.
func (e *RemoteError) Is(target error) bool { return target == ErrRemote }

// Reply codes. codeOK and the other non-error codes below codeFirstError
// are successes; each error code maps to one sentinel.
const (
	codeOK        = 0
	codeMissing   = 1 // Get/Pop: no such key (not an error)
	codeOwnerDied = 2 // Acquire succeeded with ErrOwnerDied
	codeCancelled = 3 // the call's cancel request won

	codeFirstError      = 16
	codeBadRequest      = 16
	codeNoObject        = 17
	codeWrongKind       = 18
	codeTooLarge        = 19
	codeIndex           = 20
	codeNotFound        = 21
	codeNotNumber       = 22
	codeOverflow        = 23
	codeNoAttribute     = 24
	codeEmpty           = 25
	codeFull            = 26
	codeTaskDone        = 27
	codeNotOwner        = 28
	codeTooManyReleases = 29
	codeBroken          = 30
	codeNoType          = 31
	codeNoMethod        = 32
	codeRemote          = 33
	codeShutdown        = 34
	codeInvalid         = 35
)

var codeErrors = map[int]error{
	codeBadRequest:      ErrBadRequest,
	codeNoObject:        ErrNoObject,
	codeWrongKind:       ErrWrongKind,
	codeTooLarge:        ErrTooLarge,
	codeIndex:           ErrIndex,
	codeNotFound:        ErrNotFound,
	codeNotNumber:       ErrNotNumber,
	codeOverflow:        ErrOverflow,
	codeNoAttribute:     ErrNoAttribute,
	codeEmpty:           ErrEmpty,
	codeFull:            ErrFull,
	codeTaskDone:        ErrTaskDone,
	codeNotOwner:        ErrNotOwner,
	codeTooManyReleases: ErrTooManyReleases,
	codeBroken:          ErrBroken,
	codeNoType:          ErrNoType,
	codeNoMethod:        ErrNoMethod,
	codeShutdown:        ErrDisconnected,
	codeInvalid:         errInvalid,
}

// errInvalid is the server's answer to an argument out of its domain (a
// negative queue size, say); the client checks most of these first.
var errInvalid = errors.New("manager: invalid argument")

// replyError turns an error reply into the error the caller sees.
func replyError(code int, msg string) error {
	if code == codeRemote {
		method, text, _ := strings.Cut(msg, "\x00")
		return &RemoteError{Method: method, Message: text}
	}
	sentinel, ok := codeErrors[code]
	if !ok {
		return fmt.Errorf("manager: server error %d: %s", code, msg)
	}
	if msg == "" {
		return sentinel
	}
	return &serverError{sentinel: sentinel, msg: msg}
}

// serverError is a sentinel with the server's detail.
type serverError struct {
	sentinel error
	msg      string
}

func (e *serverError) Error() string { return e.sentinel.Error() + ": " + e.msg }
func (e *serverError) Unwrap() error { return e.sentinel }

package pipe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// HandshakeTimeout bounds the authkey handshake of one connection in Accept
// and Dial, so that a silent peer cannot stall them when ctx has no deadline.
const HandshakeTimeout = 10 * time.Second

// Listener accepts authenticated connections, as Python's
// multiprocessing.connection.Listener does.
type Listener struct {
	l       net.Listener
	authkey []byte
	// accepting is held by the one Accept waiting in the listener's
	// accept: it alone may set the listener's deadline (to end that wait
	// when its ctx ends), so one caller's cancellation never ends, or
	// outlives, another's wait. Handshakes run outside it, in parallel.
	accepting chan struct{}
	closed    chan struct{}
	once      sync.Once
}

type deadliner interface{ SetDeadline(time.Time) error }

// afterFunc is context.AfterFunc; tests replace it to reproduce a
// cancellation that races with the end of an operation.
var afterFunc = context.AfterFunc

// Listen listens on network ("unix" or "tcp", "tcp4", "tcp6") and address.
// A nil authkey means no handshake, as Python's authkey=None; any other
// value, the empty key included, makes every connection prove it knows the
// key. A unix socket file is removed by Close.
func Listen(network, address string, authkey []byte) (*Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("pipe: listen: %w", err)
	}
	if _, ok := l.(deadliner); !ok {
		l.Close()
		return nil, fmt.Errorf("pipe: listen: %s listeners are not supported", network)
	}
	return &Listener{l: l, authkey: cloneKey(authkey), accepting: make(chan struct{}, 1), closed: make(chan struct{})}, nil
}

func cloneKey(k []byte) []byte {
	if k == nil {
		return nil
	}
	return append([]byte{}, k...)
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Accept waits for a connection and authenticates it. A failed handshake
// returns an error matching ErrAuth and closes that connection; the
// Listener stays usable. It returns ctx's error if ctx ends first.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	nc, err := l.acceptRaw(ctx)
	if err != nil {
		return nil, err
	}
	return handshake(ctx, nc, l.authkey, true)
}

func (l *Listener) acceptRaw(ctx context.Context) (net.Conn, error) {
	select {
	case l.accepting <- struct{}{}:
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("pipe: accept: %w", ctx.Err())
	}
	defer func() { <-l.accepting }()
	select {
	case <-l.closed:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pipe: accept: %w", err)
	}
	dl := l.l.(deadliner)
	fired := make(chan struct{})
	stop := afterFunc(ctx, func() {
		defer close(fired)
		dl.SetDeadline(time.Unix(1, 0))
	})
	nc, err := l.l.Accept()
	if !stop() {
		// ctx ended: wait until the deadline is set, then clear it for
		// the next Accept (which would otherwise fail at once, forever).
		<-fired
		dl.SetDeadline(time.Time{})
	}
	if err == nil {
		return nc, nil
	}
	select {
	case <-l.closed:
		return nil, ErrClosed
	default:
	}
	if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("pipe: accept: %w", ctx.Err())
	}
	if errors.Is(err, net.ErrClosed) {
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("pipe: accept: %w", err)
}

// Close stops listening and removes a unix socket file. It is idempotent.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.l.Close()
	})
	return err
}

// Dial connects to a Listener (ours or Python's) at address and runs the
// authkey handshake; a nil authkey skips it. A wrong key is an error
// matching ErrAuth.
func Dial(ctx context.Context, network, address string, authkey []byte) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("pipe: dial: %w", err)
	}
	return handshake(ctx, nc, authkey, false)
}

// handshake wraps nc and authenticates it; the server side delivers its
// challenge first. On failure nc is closed.
func handshake(ctx context.Context, nc net.Conn, key []byte, server bool) (*Conn, error) {
	s, ok := nc.(stream)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("pipe: unsupported connection type %T", nc)
	}
	c := newConn(s, true, true)
	if key == nil {
		return c, nil
	}
	// Until the peer has proved it knows the key, a message is at most
	// authMaxMsg bytes, and a longer one ends the handshake at its header
	// (Python's recv_bytes(256) does the same): an unauthenticated peer
	// must not make us allocate, or read, what its header announces.
	c.SetMaxMessageSize(authMaxMsg)
	c.noSkip = true
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	fired := make(chan struct{})
	stop := afterFunc(ctx, func() {
		defer close(fired)
		nc.SetDeadline(time.Unix(1, 0))
	})
	var err error
	if server {
		if err = deliverChallenge(c, key); err == nil {
			err = answerChallenge(c, key)
		}
	} else {
		if err = answerChallenge(c, key); err == nil {
			err = deliverChallenge(c, key)
		}
	}
	if !stop() {
		// ctx ended: let the function set its deadline before we clear
		// it, or a Conn returned as working would time out at once.
		<-fired
	}
	if err != nil {
		c.Close()
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded // the socket deadline fired first
		}
		if cerr != nil {
			return nil, fmt.Errorf("%w (%w)", err, cerr)
		}
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.SetMaxMessageSize(DefaultMaxMessageSize)
	c.noSkip = false
	return c, nil
}

//go:build linux

package pipe

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// HandshakeTimeout bounds the authkey handshake of one accepted connection,
// and of a Dial whose ctx has no deadline, so that a silent peer costs a
// bounded time.
const HandshakeTimeout = 10 * time.Second

// MaxPendingHandshakes bounds the connections a Listener holds before Accept
// returns them: those in the authkey handshake plus the authenticated ones
// not yet taken by Accept. When a new connection finds them all taken, the
// oldest one still in its handshake is dropped (closed) to make room: a
// legitimate peer completes its handshake in a round trip, so only a peer
// that stays silent while this many newer connections arrive loses its
// place, and no number of silent peers locks the others out.
const MaxPendingHandshakes = 256

// failedBacklog is how many recent handshake failures wait for an Accept to
// report them; older ones are dropped (the connections are closed either
// way).
const failedBacklog = 16

// Listener accepts authenticated connections, as Python's
// multiprocessing.connection.Listener does. One goroutine accepts
// connections and each handshake runs in a goroutine of its own, so that a
// slow or silent peer delays nobody else: it holds one descriptor and one
// goroutine, for at most HandshakeTimeout, and at most MaxPendingHandshakes
// are held at once.
type Listener struct {
	l       net.Listener
	authkey []byte

	start  sync.Once
	ready  chan *Conn // authenticated, waiting for Accept
	failed chan error // recent handshake failures, for Accept to report
	slots  chan struct{}
	ctx    context.Context // ends at Close: ends every handshake
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the handshakes

	mu          sync.Mutex
	handshaking list.List // *pending, oldest first; guarded by mu

	closed chan struct{}
	once   sync.Once
}

// pending is one connection in its handshake.
type pending struct {
	nc      net.Conn
	dropped bool // closed to make room; its failure is not reported
}

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
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{
		l:       l,
		authkey: cloneKey(authkey),
		ready:   make(chan *Conn),
		failed:  make(chan error, failedBacklog),
		slots:   make(chan struct{}, MaxPendingHandshakes),
		ctx:     ctx,
		cancel:  cancel,
		closed:  make(chan struct{}),
	}, nil
}

func cloneKey(k []byte) []byte {
	if k == nil {
		return nil
	}
	return append([]byte{}, k...)
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Accept returns the next authenticated connection. A failed handshake is
// returned as an error matching ErrAuth (its connection closed; the
// Listener stays usable), as Python's accept raises AuthenticationError;
// failures nobody was there to see are dropped after the most recent 16.
// It returns ctx's error if ctx ends first, and ErrClosed after Close.
// Handshakes run in the background from the first Accept on, each in its
// own goroutine (see Listener).
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case <-l.closed:
		return nil, ErrClosed
	default:
	}
	l.start.Do(func() {
		// Under mu, against Close: no loop starts once Close waits.
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.ctx.Err() == nil {
			l.wg.Add(1)
			go l.acceptLoop()
		}
	})
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.failed:
		return nil, err
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("pipe: accept: %w", ctx.Err())
	}
}

// acceptLoop accepts connections and starts a handshake for each, until
// Close.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.l.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: report it, make room, do not spin.
			l.report(fmt.Errorf("pipe: accept: %w", err))
			l.dropOldest()
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if !l.takeSlot() {
			nc.Close()
			return
		}
		p := &pending{nc: nc}
		l.mu.Lock()
		e := l.handshaking.PushBack(p)
		l.mu.Unlock()
		l.wg.Add(1)
		go l.authenticate(p, e)
	}
}

// takeSlot waits for room for one more connection, dropping the oldest
// handshake when there is none. It returns false when the Listener closes.
func (l *Listener) takeSlot() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	l.dropOldest()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// dropOldest closes the connection that has been in its handshake longest.
// Its goroutine then fails at once and gives its slot back.
func (l *Listener) dropOldest() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.handshaking.Front(); e != nil; e = e.Next() {
		if p := e.Value.(*pending); !p.dropped {
			p.dropped = true
			p.nc.Close()
			return
		}
	}
}

// authenticate runs one handshake and hands the result to Accept.
func (l *Listener) authenticate(p *pending, e *list.Element) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	c, err := handshake(l.ctx, p.nc, l.authkey, true)
	l.mu.Lock()
	l.handshaking.Remove(e)
	dropped := p.dropped
	l.mu.Unlock()
	if err != nil {
		if !dropped && l.ctx.Err() == nil {
			l.report(err)
		}
		return
	}
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.Close()
	}
}

// report keeps a handshake failure for Accept, dropping the oldest kept
// one when the backlog is full.
func (l *Listener) report(err error) {
	for {
		select {
		case l.failed <- err:
			return
		default:
		}
		select {
		case <-l.failed:
		default:
		}
	}
}

// Close stops listening, ends the handshakes in progress, closes the
// authenticated connections no Accept took, and removes a unix socket
// file. It is idempotent.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		l.mu.Lock()
		l.cancel()
		l.mu.Unlock()
		err = l.l.Close()
		l.wg.Wait()
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
	// A handshake message fits a small buffer: a pending peer costs no
	// 64 KiB read buffer (see MaxPendingHandshakes).
	c.rbuf = make([]byte, 2*authMaxMsg)
	// The server side gives every peer HandshakeTimeout; the dialling
	// side gives the server what its caller's ctx allows, and
	// HandshakeTimeout when ctx has no deadline.
	deadline, ok := ctx.Deadline()
	if server || !ok {
		deadline = time.Now().Add(HandshakeTimeout)
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
	// The full-size read buffer, keeping what the peer sent after its
	// last handshake message (its first request, say).
	rbuf := make([]byte, readBufSize)
	c.rend = copy(rbuf, c.rbuf[c.rpos:c.rend])
	c.rpos, c.rbuf = 0, rbuf
	return c, nil
}

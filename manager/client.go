//go:build linux

package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/vmihailenco/msgpack/v5"
)

// unresponsive is how long a call whose ctx ended waits for the server's
// answer (to the call, or to its cancel request) before the server is
// presumed hung and the connection closed (every call on it then returns
// ErrDisconnected; the server, if it wakes, releases what the connection
// held, locks included). A live server answers in a round trip; this only
// matters for one that is stopped, not dead, and keeps every call within
// its ctx plus this bound.
var unresponsive = 500 * time.Millisecond

// client is one connection to a server, shared by every proxy of a process
// that uses it, from any number of goroutines. Calls are multiplexed: each
// has an id, requests from concurrent callers are batched into shared
// writes, and replies are matched to callers by whichever waiting caller
// holds the reader role (see await).
type client struct {
	conn     *pipe.Conn
	network  string
	addr     string
	serverID serverID
	maxMsg   int
	// familyKey is set when the server's key is process.AuthKey(), which
	// every process of this family has: proxies of it carry a family
	// mark (see familyMark).
	familyKey bool

	nextID atomic.Uint64

	mu    sync.Mutex
	calls map[uint64]*call

	wmu       sync.Mutex
	pending   []byte // encoded requests not yet written, back to back
	ends      []int  // end offset of each request in pending
	flushing  bool
	spare     []byte
	spareEnds []int

	// The reader role: at most one waiting caller reads the connection at
	// a time and hands every reply it reads to its caller (see await).
	reading bool          // guarded by mu
	turn    chan struct{} // a hint to waiters that the role is free

	dead chan struct{} // closed once the connection is unusable
	err  error         // why; set before dead is closed
	once sync.Once

	refs refTable // see lifetime.go
}

// call is one request waiting for its reply.
type call struct {
	done  chan struct{} // closed when reply is set
	reply reply
}

// reply is a decoded reply. payload aliases the batch it came in.
type reply struct {
	code    int
	payload []byte
	grants  []uint64
}

// dial connects to a server and runs the hello exchange.
func dial(ctx context.Context, network, addr string, authkey []byte) (*client, error) {
	conn, err := pipe.Dial(ctx, network, addr, authkey)
	if err != nil {
		return nil, fmt.Errorf("manager: connect %s %s: %w", network, addr, err)
	}
	c := &client{
		familyKey: bytes.Equal(authkey, process.AuthKey()),
		conn:      conn,
		network:   network,
		addr:      addr,
		maxMsg:    defaultMaxMessage,
		calls:     make(map[uint64]*call),
		dead:      make(chan struct{}),
		turn:      make(chan struct{}, 1),
	}
	c.refs.init()
	r := c.request(opHello, 0, 2)
	r.uint(protocolVersion)
	r.int(int64(os.Getpid()))
	rep, err := c.roundTrip(ctx, r, plain)
	if err == nil {
		err = c.parseHello(rep.payload)
	}
	if err != nil {
		c.close(ErrClosed)
		return nil, fmt.Errorf("manager: connect %s %s: %w", network, addr, err)
	}
	return c, nil
}

func (c *client) parseHello(b []byte) error {
	var h struct {
		_msgpack struct{} `msgpack:",as_array"`
		Version  int
		ServerID []byte
		MaxMsg   int
	}
	if err := msgpack.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("bad hello reply: %w", err)
	}
	if h.Version != protocolVersion || len(h.ServerID) != len(c.serverID) {
		return fmt.Errorf("server speaks manager protocol %d, this binary %d: rebuild both from the same source", h.Version, protocolVersion)
	}
	copy(c.serverID[:], h.ServerID)
	if h.MaxMsg > 0 {
		c.maxMsg = h.MaxMsg
	}
	c.conn.SetMaxMessageSize(c.maxMsg + 1<<16) // replies carry a little framing
	return nil
}

// close shuts the connection down with err as the reason every call sees.
// It is idempotent: the first reason wins.
func (c *client) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.dead)
		c.conn.Close()
	})
}

// Close closes the connection. Calls in flight return ErrClosed.
func (c *client) Close() error {
	c.close(ErrClosed)
	return nil
}

func (c *client) failure() error {
	select {
	case <-c.dead:
		return c.err
	default:
		return nil
	}
}

// await waits for cl's reply (or the connection's end). There is no
// reader goroutine: a waiting caller that finds nobody reading takes the
// reader role and reads replies itself, handing the others' replies over
// as they come, until its own arrives; then it passes the role on. A lone
// caller thus gets its reply straight from its own read, without the
// thread handoff a reader goroutine costs (which doubled the round trip on
// the reference machine).
func (c *client) await(cl *call) {
	for {
		select {
		case <-cl.done:
			return
		default:
		}
		c.mu.Lock()
		mine := !c.reading
		c.reading = true
		c.mu.Unlock()
		if mine {
			c.readFor(cl)
			c.mu.Lock()
			c.reading = false
			more := len(c.calls) > 0
			c.mu.Unlock()
			if more {
				select {
				case c.turn <- struct{}{}:
				default:
				}
			}
			return
		}
		select {
		case <-cl.done:
			return
		case <-c.turn:
		case <-c.dead:
			return
		}
	}
}

// readFor reads reply batches until cl's reply is in or the connection
// fails.
func (c *client) readFor(cl *call) {
	for {
		select {
		case <-cl.done:
			return
		default:
		}
		msg, err := c.conn.RecvBytes()
		if err != nil {
			c.readFailed(err)
			return
		}
		for len(msg) > 0 {
			id, rep, n, err := parseReply(msg)
			if err != nil {
				c.close(fmt.Errorf("%w: unreadable reply from the server: %v", ErrDisconnected, err))
				return
			}
			msg = msg[n:]
			c.deliver(id, rep)
		}
	}
}

func (c *client) readFailed(err error) {
	if errors.Is(err, pipe.ErrClosed) && c.failure() != nil {
		return // closed by us
	}
	c.close(fmt.Errorf("%w (%s %s: %v)", ErrDisconnected, c.network, c.addr, err))
}

// parseReply reads one [callID, code, payload, grants] array.
func parseReply(b []byte) (id uint64, rep reply, n int, err error) {
	cnt, pos, err := msgp.ReadArrayHeader(b)
	if err != nil || cnt != 4 {
		return 0, rep, 0, errMalformed
	}
	id, k, err := msgp.ReadUint(b[pos:])
	if err != nil {
		return 0, rep, 0, errMalformed
	}
	pos += k
	code, k, err := msgp.ReadUint(b[pos:])
	if err != nil {
		return 0, rep, 0, errMalformed
	}
	pos += k
	rep.code = int(code)
	k, err = skipValue(b[pos:], nil)
	if err != nil {
		return 0, rep, 0, err
	}
	rep.payload = b[pos : pos+k]
	pos += k
	if msgp.NextType(b[pos:]) == msgp.NilType {
		pos++
	} else {
		cnt, h, err := msgp.ReadArrayHeader(b[pos:])
		if err != nil || cnt > len(b)-pos {
			return 0, rep, 0, errMalformed
		}
		pos += h
		rep.grants = make([]uint64, cnt)
		for i := range rep.grants {
			g, k, err := msgp.ReadUint(b[pos:])
			if err != nil {
				return 0, rep, 0, errMalformed
			}
			rep.grants[i] = g
			pos += k
		}
	}
	return id, rep, pos, nil
}

func (c *client) deliver(id uint64, rep reply) {
	c.mu.Lock()
	cl := c.calls[id]
	delete(c.calls, id)
	c.mu.Unlock()
	if cl == nil {
		// Nobody waits for it (its caller saw the connection fail): hand
		// back what it granted.
		c.settle(rep.grants)
		return
	}
	cl.reply = rep
	close(cl.done)
}

// request is an encoded request being built. It is a msgpack encoder
// writing into a buffer that remembers the client: proxies encoded as
// arguments recognise that they go to their own server (see proxy.go).
type request struct {
	buf  valueBuf
	enc  *msgpack.Encoder
	id   uint64
	tmp  []byte
	call *call
}

// valueBuf is the writer of request encoders. Proxies encoded into it
// check cl to know that they are being sent to their own server.
type valueBuf struct {
	bytes.Buffer
	cl *client
}

var requestPool = sync.Pool{New: func() any {
	r := &request{}
	r.enc = msgpack.NewEncoder(&r.buf)
	r.enc.UseCompactInts(true)
	r.enc.SetSortMapKeys(true)
	return r
}}

// request starts a request for op on object obj with nargs arguments to
// follow.
func (c *client) request(o op, obj uint64, nargs int) *request {
	return c.newRequest(o, obj, nargs, c.nextID.Add(1))
}

// notice starts a request that wants no reply (callID 0); send it with
// post.
func (c *client) notice(o op, obj uint64, nargs int) *request {
	return c.newRequest(o, obj, nargs, 0)
}

func (c *client) newRequest(o op, obj uint64, nargs int, id uint64) *request {
	r := requestPool.Get().(*request)
	r.buf.Reset()
	r.buf.cl = c
	r.id = id
	r.tmp = msgp.AppendArrayHeader(r.tmp[:0], 3+nargs)
	r.tmp = msgp.AppendUint(r.tmp, r.id)
	r.tmp = msgp.AppendUint(r.tmp, uint64(o))
	r.tmp = msgp.AppendUint(r.tmp, obj)
	r.buf.Write(r.tmp)
	r.call = &call{}
	return r
}

func (r *request) free() {
	r.call = nil
	if r.buf.Cap() > 64<<10 {
		r.buf = valueBuf{}
		r.enc.Reset(&r.buf)
	}
	r.buf.cl = nil
	requestPool.Put(r)
}

func (r *request) uint(u uint64) { r.tmp = msgp.AppendUint(r.tmp[:0], u); r.buf.Write(r.tmp) }
func (r *request) int(i int64)   { r.tmp = msgp.AppendInt(r.tmp[:0], i); r.buf.Write(r.tmp) }
func (r *request) str(s string)  { r.tmp = msgp.AppendString(r.tmp[:0], s); r.buf.Write(r.tmp) }
func (r *request) nil()          { r.tmp = msgp.AppendNil(r.tmp[:0]); r.buf.Write(r.tmp) }
func (r *request) arrayHeader(n int) {
	r.tmp = msgp.AppendArrayHeader(r.tmp[:0], n)
	r.buf.Write(r.tmp)
}

// value encodes a user value. The request is unusable after an error.
func (r *request) value(v any) error {
	if err := r.enc.Encode(v); err != nil {
		return fmt.Errorf("manager: cannot encode %T: %w", v, err)
	}
	return nil
}

// roundTrip sends r and waits for its reply. mode says what ctx means: a
// blocking call (Acquire, a queue Get) may be parked by the server, so
// when ctx ends first the server is asked to cancel it, and its answer
// decides (an Acquire that won the race returns success, and the ctx error
// is not reported). A plain call is answered at once, and returns its
// result even if ctx ended meanwhile. r is consumed.
func (c *client) roundTrip(ctx context.Context, r *request, mode callMode) (reply, error) {
	cl := r.call
	id := r.id
	if err := c.failure(); err != nil {
		r.free()
		return reply{}, err
	}
	if err := ctx.Err(); err != nil {
		r.free()
		return reply{}, fmt.Errorf("manager: %w", err)
	}
	if r.buf.Len() > c.maxMsg {
		n := r.buf.Len()
		r.free()
		return reply{}, fmt.Errorf("%w: request of %d bytes, limit %d", ErrTooLarge, n, c.maxMsg)
	}
	cl.done = make(chan struct{})
	c.mu.Lock()
	c.calls[id] = cl
	c.mu.Unlock()
	err := c.send(r.buf.Bytes(), true)
	r.free()
	if err != nil {
		c.forget(id)
		return reply{}, err
	}
	if ctx.Done() != nil {
		// When ctx ends: a blocking call is cancelled on the server, whose
		// answer (cancelled, or the result if the call won the race) comes
		// next; a plain call's answer is coming anyway. Either way the
		// caller waits for it, so that the object is never left in a state
		// the caller was not told about, but not forever.
		var timer *time.Timer
		var tmu sync.Mutex
		stop := context.AfterFunc(ctx, func() {
			if mode != plain {
				c.post(c.notice(opCancel, id, 0))
			}
			if mode != mustReturn {
				tmu.Lock()
				timer = time.AfterFunc(unresponsive, func() {
					select {
					case <-cl.done:
					default:
						c.close(fmt.Errorf("%w: no answer from the server %v after a call's ctx ended", ErrDisconnected, unresponsive))
					}
				})
				tmu.Unlock()
			}
		})
		defer func() {
			stop()
			tmu.Lock()
			if timer != nil {
				timer.Stop()
			}
			tmu.Unlock()
		}()
	}
	c.await(cl)
	select {
	case <-cl.done:
	default:
		c.forget(id)
		if ctx.Err() != nil {
			return reply{}, fmt.Errorf("manager: %w (%w)", ctx.Err(), c.err)
		}
		return reply{}, c.err
	}
	rep, err := c.result(cl)
	if err == nil && rep.code == codeCancelled {
		return rep, fmt.Errorf("manager: %w", ctx.Err())
	}
	return rep, err
}

// callMode tells roundTrip what ctx means for a call.
type callMode uint8

const (
	// plain calls are answered at once by the server.
	plain callMode = iota
	// blocking calls may wait on the server; ctx cancels them there.
	blocking
	// mustReturn calls are blocking calls whose answer the caller must
	// have: Condition.Wait returns holding the lock, so after its cancel
	// it waits for the server however long the lock takes (the
	// unresponsive-server bound does not apply).
	mustReturn
)

func (c *client) result(cl *call) (reply, error) {
	rep := cl.reply
	if rep.code >= codeFirstError {
		msg, _, _ := msgp.ReadString(rep.payload)
		c.settle(rep.grants)
		return rep, replyError(rep.code, msg)
	}
	return rep, nil
}

func (c *client) forget(id uint64) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// post sends a request that expects no reply (its id is 0), without
// waiting for the write: it may run on the runtime's cleanup goroutine,
// which must not block on a socket.
func (c *client) post(r *request) {
	if c.failure() != nil {
		r.free()
		return
	}
	c.send(r.buf.Bytes(), false)
	r.free()
}

// send queues a copy of an encoded request and, if no write is in
// progress and inline is true, writes the queue itself (flat combining:
// concurrent callers' requests share that write). With inline false a
// goroutine does the writing.
func (c *client) send(b []byte, inline bool) error {
	c.wmu.Lock()
	if err := c.failure(); err != nil {
		c.wmu.Unlock()
		return err
	}
	c.pending = append(c.pending, b...)
	c.ends = append(c.ends, len(c.pending))
	if c.flushing {
		c.wmu.Unlock()
		return nil
	}
	c.flushing = true
	c.wmu.Unlock()
	if !inline {
		go c.flush()
		return nil
	}
	return c.flush()
}

// flush writes queued requests until the queue is empty, in messages of
// at most maxMsg bytes cut between requests. The caller has set flushing.
func (c *client) flush() error {
	c.wmu.Lock()
	for len(c.pending) > 0 {
		out, ends := c.pending, c.ends
		c.pending, c.ends = c.spare[:0], c.spareEnds[:0]
		c.wmu.Unlock()
		err := sendChunks(c.conn, out, ends, c.maxMsg)
		c.wmu.Lock()
		if cap(out) <= 1<<20 {
			c.spare, c.spareEnds = out[:0], ends[:0]
		} else {
			c.spare, c.spareEnds = nil, nil
		}
		if err != nil {
			c.flushing = false
			c.pending, c.ends = nil, nil
			c.wmu.Unlock()
			c.close(fmt.Errorf("%w (%s %s: %v)", ErrDisconnected, c.network, c.addr, err))
			return c.failure()
		}
	}
	c.flushing = false
	c.wmu.Unlock()
	return nil
}

// sendChunks sends out as messages of at most max bytes (a single larger
// entry goes alone), cut at the entry ends.
func sendChunks(conn *pipe.Conn, out []byte, ends []int, max int) error {
	start := 0
	for start < len(out) {
		end := start
		for _, e := range ends {
			if e <= start {
				continue
			}
			if e-start > max && end > start {
				break
			}
			end = e
		}
		if err := conn.SendBytes(out[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// decodeValue decodes a value from a reply of this client into v. Proxies
// inside it attach to this client (see proxy.go).
func (c *client) decodeValue(b []byte, v any) error {
	if err := wire.Admit(b, v); err != nil {
		if errors.Is(err, wire.ErrBudget) {
			return fmt.Errorf("manager: %w: %w", ErrTooLarge, err)
		}
		return fmt.Errorf("manager: %w", err)
	}
	rd := valueReaderPool.Get().(*valueReader)
	rd.Reader.Reset(b)
	rd.cl = c
	rd.dec.Reset(rd)
	err := wire.Decode(rd.dec, v)
	rd.cl = nil
	rd.Reader.Reset(nil)
	valueReaderPool.Put(rd)
	if err != nil {
		return fmt.Errorf("manager: cannot decode into %T: %w", v, err)
	}
	return nil
}

// valueReader is the reader of value decoders, recognised by proxies
// decoded from it.
type valueReader struct {
	bytes.Reader
	cl  *client
	dec *msgpack.Decoder
}

var valueReaderPool = sync.Pool{New: func() any {
	r := &valueReader{}
	r.dec = msgpack.NewDecoder(r)
	return r
}}

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

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/vmihailenco/msgpack/v5"
)

// cancelGrace bounds how long a call whose ctx ended still waits for the
// server's answer (to its cancel request, for a blocking call). The answer
// normally comes in a round trip; the bound only matters when the server
// has stopped answering but kept the connection open.
const cancelGrace = 2 * time.Second

// client is one connection to a server, shared by every proxy of a process
// that uses it, from any number of goroutines. Calls are multiplexed: each
// has an id, replies are matched to callers by a reader goroutine, and
// requests from concurrent callers are batched into shared writes.
type client struct {
	conn     *pipe.Conn
	network  string
	addr     string
	authkey  []byte
	serverID serverID
	maxMsg   int
	auto     bool // opened by the registry for decoded proxies

	nextID atomic.Uint64

	mu    sync.Mutex
	calls map[uint64]*call
	late  map[uint64]lateCall // abandoned Acquire calls

	wmu      sync.Mutex
	pending  [][]byte // encoded requests not yet written
	flushing bool
	spare    []byte

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
	op    op
	obj   uint64
	done  chan struct{}
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
		conn:    conn,
		network: network,
		addr:    addr,
		authkey: append([]byte(nil), authkey...),
		maxMsg:  defaultMaxMessage,
		calls:   make(map[uint64]*call),
		late:    make(map[uint64]lateCall),
		dead:    make(chan struct{}),
		turn:    make(chan struct{}, 1),
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

// pollSlice is how long a reader whose ctx can end waits in one poll
// before it looks at ctx again. It only matters when the server does not
// answer at all: a cancelled blocking call is answered at once.
const pollSlice = 50 * time.Millisecond

// await waits for cl's reply. There is no reader goroutine: a waiting
// caller that finds nobody reading takes the reader role and reads replies
// itself, handing the others' replies over as they come, until its own
// arrives; then it passes the role on. A lone caller thus gets its reply
// straight from its own read, without the thread handoff a reader
// goroutine costs (which doubled the round trip on this machine).
// It returns nil once the reply is in, ctx's error, or the connection's.
func (c *client) await(ctx context.Context, cl *call) error {
	for {
		select {
		case <-cl.done:
			return nil
		default:
		}
		c.mu.Lock()
		mine := !c.reading
		c.reading = true
		c.mu.Unlock()
		if mine {
			err := c.readFor(ctx, cl)
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
			return err
		}
		select {
		case <-cl.done:
			return nil
		case <-c.turn:
		case <-c.dead:
			select {
			case <-cl.done:
				return nil
			default:
			}
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readFor reads reply batches until cl's reply is in. When ctx can end it
// polls in slices so as to notice; otherwise it blocks in the read.
func (c *client) readFor(ctx context.Context, cl *call) error {
	cancellable := ctx.Done() != nil
	for {
		select {
		case <-cl.done:
			return nil
		default:
		}
		if cancellable {
			if err := ctx.Err(); err != nil {
				return err
			}
			ready, err := c.conn.Poll(pollSlice)
			if err != nil {
				c.readFailed(err)
				return c.err
			}
			if !ready {
				continue
			}
		}
		msg, err := c.conn.RecvBytes()
		if err != nil {
			c.readFailed(err)
			select {
			case <-cl.done:
				return nil
			default:
			}
			return c.err
		}
		for len(msg) > 0 {
			id, rep, n, err := parseReply(msg)
			if err != nil {
				c.close(fmt.Errorf("%w: unreadable reply from the server: %v", ErrDisconnected, err))
				return c.err
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
	cnt, pos, err := arrayHeader(b)
	if err != nil || cnt != 4 {
		return 0, rep, 0, errMalformed
	}
	id, k, err := readUint(b[pos:])
	if err != nil {
		return 0, rep, 0, err
	}
	pos += k
	code, k, err := readUint(b[pos:])
	if err != nil {
		return 0, rep, 0, err
	}
	pos += k
	rep.code = int(code)
	k, err = skipValue(b[pos:], nil)
	if err != nil {
		return 0, rep, 0, err
	}
	rep.payload = b[pos : pos+k]
	pos += k
	if pos < len(b) && b[pos] == msgpNil {
		pos++
	} else {
		cnt, h, err := arrayHeader(b[pos:])
		if err != nil || cnt > len(b)-pos {
			return 0, rep, 0, errMalformed
		}
		pos += h
		rep.grants = make([]uint64, cnt)
		for i := range rep.grants {
			g, k, err := readUint(b[pos:])
			if err != nil {
				return 0, rep, 0, err
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
		// The caller gave up (its ctx ended). Hand back what the reply
		// granted, and undo an acquisition nobody will release.
		c.settle(rep.grants)
		if rep.code == codeOK || rep.code == codeOwnerDied {
			c.undoLate(id, rep)
		}
		return
	}
	cl.reply = rep
	close(cl.done)
}

// lateCall remembers an Acquire abandoned by its caller, so that a late
// success can be undone.
type lateCall struct {
	op  op
	obj uint64
}

func (c *client) undoLate(id uint64, rep reply) {
	c.mu.Lock()
	lc, ok := c.late[id]
	delete(c.late, id)
	c.mu.Unlock()
	if !ok {
		return
	}
	acquired := lc.op == opAcquire || (lc.op == opTryAcquire && len(rep.payload) == 1 && rep.payload[0] == 0xc3)
	if acquired {
		c.post(c.notice(opUnlock, lc.obj, 0))
	}
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
	r.tmp = appendArrayHeader(r.tmp[:0], 3+nargs)
	r.tmp = appendUint(r.tmp, r.id)
	r.tmp = appendUint(r.tmp, uint64(o))
	r.tmp = appendUint(r.tmp, obj)
	r.buf.Write(r.tmp)
	r.call = &call{op: o, obj: obj}
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

func (r *request) uint(u uint64) { r.tmp = appendUint(r.tmp[:0], u); r.buf.Write(r.tmp) }
func (r *request) int(i int64)   { r.tmp = appendInt(r.tmp[:0], i); r.buf.Write(r.tmp) }
func (r *request) str(s string)  { r.tmp = appendString(r.tmp[:0], s); r.buf.Write(r.tmp) }
func (r *request) bool(v bool)   { r.tmp = appendBool(r.tmp[:0], v); r.buf.Write(r.tmp) }
func (r *request) nil()          { r.buf.WriteByte(msgpNil) }
func (r *request) raw(b []byte)  { r.buf.Write(b) }

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
// is not reported). A plain call is answered at once; when ctx ends first
// it still waits up to cancelGrace for the reply so that an effect that
// happened is not reported as a failure. r is consumed.
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
	if err := c.send(r.take(), true); err != nil {
		c.forget(id)
		return reply{}, err
	}
	err := c.await(ctx, cl)
	if err == nil {
		return c.result(cl)
	}
	if ctx.Err() == nil {
		return c.afterDeath(id, cl)
	}
	// ctx ended first. A blocking call is cancelled on the server, whose
	// answer (cancelled, or the result if it won the race) comes next. A
	// plain call's answer is coming anyway. Wait a bounded time for it,
	// except for a Condition wait, which must return holding the lock.
	if mode != plain {
		c.post(c.notice(opCancel, id, 0))
	}
	wctx := context.Background()
	if mode != mustReturn {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(wctx, cancelGrace)
		defer cancel()
	}
	if err := c.await(wctx, cl); err != nil {
		if wctx.Err() == nil {
			return c.afterDeath(id, cl)
		}
		c.mu.Lock()
		_, still := c.calls[id]
		if still {
			delete(c.calls, id)
			if cl.op == opAcquire || cl.op == opTryAcquire {
				c.late[id] = lateCall{op: cl.op, obj: cl.obj}
			}
		}
		c.mu.Unlock()
		if still {
			return reply{}, fmt.Errorf("manager: %w (and the server did not answer)", ctx.Err())
		}
		<-cl.done
	}
	rep, rerr := c.result(cl)
	if rerr == nil && rep.code == codeCancelled {
		return rep, fmt.Errorf("manager: %w", ctx.Err())
	}
	return rep, rerr
}

// callMode tells roundTrip what ctx means for a call.
type callMode uint8

const (
	// plain calls are answered at once; ctx bounds the wait.
	plain callMode = iota
	// blocking calls may wait on the server; ctx cancels them there.
	blocking
	// mustReturn calls are blocking calls whose answer the caller must
	// have: Condition.Wait returns holding the lock, so after its cancel
	// it waits for the server however long the lock takes.
	mustReturn
)

func (c *client) result(cl *call) (reply, error) {
	rep := cl.reply
	if rep.code >= codeFirstError {
		msg, _, _ := readString(rep.payload)
		c.settle(rep.grants)
		return rep, replyError(rep.code, msg)
	}
	return rep, nil
}

func (c *client) afterDeath(id uint64, cl *call) (reply, error) {
	select {
	case <-cl.done: // the reply made it before the end
		return c.result(cl)
	default:
	}
	c.forget(id)
	return reply{}, c.err
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
	c.send(r.take(), false)
}

// take hands the encoded bytes over (to the pending queue) and frees r.
func (r *request) take() []byte {
	b := r.buf.Bytes()
	r.buf = valueBuf{}
	r.enc.Reset(&r.buf)
	r.free()
	return b
}

// send queues an encoded request and, if no write is in progress and
// inline is true, writes the queue itself (flat combining: concurrent
// callers' requests share that write). With inline false a goroutine does
// the writing.
func (c *client) send(b []byte, inline bool) error {
	c.wmu.Lock()
	if err := c.failure(); err != nil {
		c.wmu.Unlock()
		return err
	}
	c.pending = append(c.pending, b)
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

// flush writes queued requests until the queue is empty. The caller has set
// flushing.
func (c *client) flush() error {
	c.wmu.Lock()
	for len(c.pending) > 0 {
		// Take whole requests up to the message limit.
		buf := c.spare[:0]
		n := 0
		for n < len(c.pending) && (n == 0 || len(buf)+len(c.pending[n]) <= c.maxMsg) {
			buf = append(buf, c.pending[n]...)
			c.pending[n] = nil
			n++
		}
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = c.pending[:0:0]
		}
		c.wmu.Unlock()
		err := c.conn.SendBytes(buf)
		c.wmu.Lock()
		if cap(buf) <= 256<<10 {
			c.spare = buf[:0]
		}
		if err != nil {
			c.flushing = false
			c.pending = nil
			c.wmu.Unlock()
			c.close(fmt.Errorf("%w (%s %s: %v)", ErrDisconnected, c.network, c.addr, err))
			return c.failure()
		}
	}
	c.flushing = false
	c.wmu.Unlock()
	return nil
}

// decodeValue decodes a value from a reply of this client into v. Proxies
// inside it attach to this client (see proxy.go).
func (c *client) decodeValue(b []byte, v any) error {
	rd := valueReaderPool.Get().(*valueReader)
	rd.Reader.Reset(b)
	rd.cl = c
	rd.dec.Reset(rd)
	err := rd.dec.Decode(v)
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

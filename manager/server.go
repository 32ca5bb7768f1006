//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pipe"
)

// server holds every shared object. One mutex guards all of them: each
// operation is a few map or slice steps, far cheaper than the system calls
// around it, and one lock makes every operation atomic with respect to
// every other (Add, CompareAndSwap, a Condition's release-and-wait). Calls
// that must wait (Acquire on a held lock, Get on an empty queue) do not
// hold a goroutine: they are parked as waiters on the object and answered
// by whichever operation frees them.
type server struct {
	id      serverID
	network string
	addr    string
	maxMsg  int

	mu      sync.Mutex
	objects map[uint64]*object
	nextObj uint64
	names   map[string]*object
	tokens  map[uint64]*token
	nextTok uint64
	conns   map[*sconn]struct{}
	closing bool
	freeing []*object // objects whose count reached zero, freed by drain
	kicked  []*sconn  // connections with new replies (see kickWriters)
	freed   int       // bytes of values freed since the last giveBackMemory

	releasing atomic.Bool // a giveBackMemory is scheduled
	wg        sync.WaitGroup
}

// object is one shared object; the field for its kind is set.
type object struct {
	id   uint64
	kind kind
	refs int
	name string

	dict   *odict        // Dict, Namespace
	items  [][]byte      // List, Array
	val    []byte        // Value
	queue  *queueState   // Queue, Joinable
	lock   *lockState    // Lock, RLock
	sem    *semState     // Semaphore, BoundedSemaphore
	cond   *condState    // Condition
	event  *eventState   // Event
	bar    *barrierState // Barrier
	custom *customState  // registered types
}

// sconn is the server side of one client connection.
type sconn struct {
	s    *server
	conn *pipe.Conn

	// Guarded by s.mu.
	holds   map[uint64]int       // references granted to this connection
	tokens  map[uint64]*token    // tokens it exported, not yet redeemed
	waiting map[uint64]*waiter   // its parked calls, by callID
	owned   map[*object]struct{} // locks it holds
	closed  bool
	kicked  bool

	wmu      sync.Mutex
	out      []byte // replies not yet written
	ends     []int  // end offset of each reply in out
	spare    []byte
	flushing bool
	kick     chan struct{} // wakes the writer goroutine
}

// waiter is a parked call.
type waiter struct {
	c      *sconn
	id     uint64
	obj    *object
	op     op
	item   []byte // Put: the item (its references are counted)
	index  int    // Barrier: arrival index
	cancel bool   // Condition: the wait was cancelled; reply so once the lock is back
	stop   context.CancelFunc
}

func newServer(network, addr string, maxMsg int) *server {
	if maxMsg <= 0 {
		maxMsg = defaultMaxMessage
	}
	return &server{
		id:      newServerID(),
		network: network,
		addr:    addr,
		maxMsg:  maxMsg,
		objects: make(map[uint64]*object),
		names:   make(map[string]*object),
		tokens:  make(map[uint64]*token),
		conns:   make(map[*sconn]struct{}),
	}
}

// serve accepts connections on l until ctx ends, then closes everything.
func (s *server) serve(ctx context.Context, l *pipe.Listener) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One accept loop is enough: the Listener runs every handshake in a
	// goroutine of its own, so a silent peer holds up nobody (see
	// pipe.MaxPendingHandshakes for the bound).
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		s.acceptLoop(ctx, l)
	}()
	<-ctx.Done()
	l.Close()
	<-accepting
	s.mu.Lock()
	s.closing = true
	conns := make([]*sconn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.conn.Close()
	}
	s.wg.Wait()
}

func (s *server) acceptLoop(ctx context.Context, l *pipe.Listener) {
	for {
		conn, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, pipe.ErrClosed) {
				return
			}
			continue // a failed handshake, or out of descriptors (the Listener paces its retries)
		}
		conn.SetMaxMessageSize(s.maxMsg)
		conn.RefuseOversize() // and the reader closes the connection
		c := &sconn{
			s:       s,
			conn:    conn,
			holds:   make(map[uint64]int),
			tokens:  make(map[uint64]*token),
			waiting: make(map[uint64]*waiter),
			owned:   make(map[*object]struct{}),
			kick:    make(chan struct{}, 1),
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
}

// readLoop reads request batches and runs them.
func (c *sconn) readLoop() {
	s := c.s
	defer s.wg.Done()
	defer c.shutdown()
	for {
		msg, err := c.conn.RecvBytes()
		if err != nil {
			// End of file, a broken frame, or a frame over the size limit
			// (its sender cannot be told which call failed, so it is cut
			// off and sees ErrDisconnected at once).
			return
		}
		large := len(msg) >= largeFrame
		for len(msg) > 0 {
			s.mu.Lock()
			rest, ok := s.runBatch(c, msg)
			s.drain()
			s.kickWriters(c)
			large = s.tookFreed() || large
			s.mu.Unlock()
			c.flush()
			if !ok {
				return
			}
			msg = rest
		}
		if large {
			s.giveBackMemory()
		}
	}
}

// largeFrame is the frame size from which the server gives memory back to
// the system soon after using it (see giveBackMemory).
const largeFrame = 1 << 20

// giveBackMemory returns the memory freed since a large frame was read or
// large values were freed to the system, within giveBackDelay: the Go
// runtime alone returns it over minutes, and a server that took a few
// 64 MiB frames would hold their RSS that long after its clients left.
// Calls within the delay share one collection.
func (s *server) giveBackMemory() {
	if s.releasing.Swap(true) {
		return
	}
	time.AfterFunc(giveBackDelay, func() {
		s.releasing.Store(false)
		debug.FreeOSMemory()
	})
}

const giveBackDelay = 100 * time.Millisecond

// writeLoop writes replies produced for this connection by other
// connections' operations (a Release that hands the lock to a waiter of
// this connection, say).
func (c *sconn) writeLoop() {
	defer c.s.wg.Done()
	for range c.kick {
		c.flush()
	}
}

// kickWriters wakes the writer of every connection that got replies since
// the last call, except self (whose reader flushes them itself). The
// sends never block, and happen under s.mu so that no connection closes
// its kick channel meanwhile. Caller holds s.mu.
func (s *server) kickWriters(self *sconn) {
	for _, c := range s.kicked {
		c.kicked = false
		if c != self && !c.closed {
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
	}
	clear(s.kicked)
	s.kicked = s.kicked[:0]
}

// shutdown closes a connection's socket and forgets it.
func (c *sconn) shutdown() {
	s := c.s
	c.conn.Close()
	s.mu.Lock()
	s.forget(c)
	large := s.tookFreed()
	s.mu.Unlock()
	if large {
		s.giveBackMemory()
	}
}

// forget drops everything a closed connection had on the server: its
// parked calls, its references and tokens (freeing what nothing else
// refers to), and its locks (their next owner hears ErrOwnerDied). It
// ends c's writer. Caller holds s.mu.
func (s *server) forget(c *sconn) {
	c.closed = true
	delete(s.conns, c)
	for _, w := range c.waiting {
		s.cancelWaiter(w, false)
	}
	c.waiting = nil
	for o := range c.owned {
		s.ownerDied(o, c)
	}
	for _, t := range c.tokens {
		delete(s.tokens, t.id)
		s.decref(t.obj, 1)
	}
	c.tokens = nil
	for id, n := range c.holds {
		if o := s.objects[id]; o != nil {
			s.decref(o, n)
		}
	}
	c.holds = nil
	s.drain()
	s.kickWriters(c)
	close(c.kick)
}

// tookFreed reports whether large values were freed since the last call.
// Caller holds s.mu.
func (s *server) tookFreed() bool {
	if s.freed < largeFrame {
		return false
	}
	s.freed = 0
	return true
}

// request is one parsed request: args are raw msgpack values.
type sreq struct {
	id   uint64
	op   op
	obj  uint64
	args [][]byte
}

// parseRequest reads one request array at the start of b. On error it
// returns the call id when it got that far (0 otherwise).
func parseRequest(b []byte, args [][]byte) (r sreq, n int, err error) {
	cnt, pos, err := msgp.ReadArrayHeader(b)
	if err != nil || cnt < 3 || cnt > 3+16 {
		return r, 0, errMalformed
	}
	id, k, err := msgp.ReadUint(b[pos:])
	if err != nil {
		return r, 0, errMalformed
	}
	r.id = id
	pos += k
	o, k, err := msgp.ReadUint(b[pos:])
	if err != nil || o > 255 {
		return r, 0, errMalformed
	}
	r.op = op(o)
	pos += k
	obj, k, err := msgp.ReadUint(b[pos:])
	if err != nil {
		return r, 0, errMalformed
	}
	r.obj = obj
	pos += k
	r.args = args[:0]
	for range cnt - 3 {
		k, err := skipValue(b[pos:], nil)
		if err != nil {
			return r, 0, err
		}
		r.args = append(r.args, b[pos:pos+k])
		pos += k
	}
	return r, pos, nil
}

// runBatch runs the requests of a batch until the replies waiting to be
// written reach the message size limit, and returns the requests left (the
// caller writes the replies, then runs the rest): so a batch of many
// requests with large replies never makes the server hold more than about
// one message of replies for a connection. A malformed request gets an
// error reply when its id could be read; the rest of the batch cannot be
// located and is dropped. ok is false when the connection should be
// closed. Caller holds s.mu.
func (s *server) runBatch(c *sconn, msg []byte) (rest []byte, ok bool) {
	var argbuf [8][]byte
	for len(msg) > 0 {
		r, n, err := parseRequest(msg, argbuf[:0])
		if err != nil {
			if r.id != 0 {
				c.fail(r.id, codeBadRequest, "cannot parse the request")
				return nil, true
			}
			// Not even an id: nothing sane can be answered.
			return nil, false
		}
		msg = msg[n:]
		s.handle(c, &r)
		if c.unwritten() >= s.maxMsg {
			return msg, true
		}
	}
	return nil, true
}

// handle runs one request. Caller holds s.mu.
func (s *server) handle(c *sconn, r *sreq) {
	switch r.op {
	case opHello:
		s.hello(c, r)
		return
	case opCreate:
		s.create(c, r)
		return
	case opDecref:
		s.handleDecref(c, r)
		return
	case opRedeem:
		s.redeem(c, r)
		return
	case opCancel:
		if w := c.waiting[r.obj]; w != nil {
			s.cancelWaiter(w, true)
		}
		return
	case opStats:
		s.stats(c, r)
		return
	}
	o := s.objects[r.obj]
	if o == nil {
		c.fail(r.id, codeNoObject, fmt.Sprintf("object %d", r.obj))
		return
	}
	if r.op == opExport {
		s.export(c, r, o)
		return
	}
	if code, msg := handlers[o.kind](s, c, r, o); code >= codeFirstError {
		c.fail(r.id, code, msg)
	}
}

// handler runs the operations of one kind of object: r on o, for c. Caller
// holds s.mu.
//
// The contract: a handler that returns codeOK has already replied (c.ok,
// c.reply) or parked the call as a waiter, to be answered by whichever
// operation frees it; a handler that returns an error code has not
// replied, and handle sends the error reply with msg. So a handler never
// both replies and returns an error, and every call gets exactly one
// answer.
type handler func(s *server, c *sconn, r *sreq, o *object) (code int, msg string)

var handlers = [kindEnd]handler{
	kindDict:             (*server).dictOp,
	kindNamespace:        (*server).dictOp,
	kindList:             (*server).listOp,
	kindValue:            (*server).valueOp,
	kindArray:            (*server).arrayOp,
	kindQueue:            (*server).queueOp,
	kindJoinable:         (*server).queueOp,
	kindLock:             (*server).lockOp,
	kindRLock:            (*server).lockOp,
	kindSemaphore:        (*server).semOp,
	kindBoundedSemaphore: (*server).semOp,
	kindCondition:        (*server).condOp,
	kindEvent:            (*server).eventOp,
	kindBarrier:          (*server).barrierOp,
	kindObject:           (*server).customOp,
}

// bad is a handler's answer to arguments it cannot use.
func bad(what string) (int, string) { return codeBadRequest, what }

// unknownOp is a handler's answer to an op its kind does not have.
func unknownOp(r *sreq, o *object) (int, string) {
	return codeBadRequest, fmt.Sprintf("%s has no operation %s", o.kind, r.op)
}

// hello checks the client's protocol version and tells it the server's
// identity and message size limit.
func (s *server) hello(c *sconn, r *sreq) {
	if len(r.args) < 1 {
		c.fail(r.id, codeBadRequest, "hello: want the protocol version")
		return
	}
	if v, _, err := msgp.ReadUint(r.args[0]); err != nil || v != protocolVersion {
		c.fail(r.id, codeBadRequest, fmt.Sprintf("client speaks manager protocol %s, this server %d: rebuild both from the same source", numText(r.args[0]), protocolVersion))
		return
	}
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendUint(b, protocolVersion)
	b = msgp.AppendBin(b, s.id[:])
	b = msgp.AppendUint(b, uint64(s.maxMsg))
	c.ok(r.id, b, nil)
}

// stats reports the object, connection and token counts (for tests).
func (s *server) stats(c *sconn, r *sreq) {
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendUint(b, uint64(len(s.objects)))
	b = msgp.AppendUint(b, uint64(len(s.conns)))
	b = msgp.AppendUint(b, uint64(len(s.tokens)))
	c.ok(r.id, b, nil)
}

func (s *server) create(c *sconn, r *sreq) {
	if len(r.args) != 3 {
		c.fail(r.id, codeBadRequest, "create: want kind, name, parameter")
		return
	}
	kd, _, err := msgp.ReadUint(r.args[0])
	if err != nil || kd == 0 || kd >= uint64(kindEnd) {
		c.fail(r.id, codeBadRequest, "create: bad kind")
		return
	}
	k := kind(kd)
	var name string
	if msgp.NextType(r.args[1]) != msgp.NilType {
		if name, _, err = msgp.ReadString(r.args[1]); err != nil {
			c.fail(r.id, codeBadRequest, "create: bad name")
			return
		}
	}
	param := r.args[2]
	if name != "" {
		if o := s.names[name]; o != nil {
			if o.kind != k || (k == kindObject && o.custom.typeName != stringArg(param)) {
				c.fail(r.id, codeWrongKind, fmt.Sprintf("%q is a %s", name, describe(o)))
				return
			}
			s.grantObject(c, o)
			c.ok(r.id, msgp.AppendUint(nil, o.id), []uint64{o.id})
			return
		}
	}
	o := &object{kind: k, name: name}
	if code, msg := s.initObject(c, o, param); code != codeOK {
		c.fail(r.id, code, msg)
		return
	}
	s.nextObj++
	o.id = s.nextObj
	s.objects[o.id] = o
	if name != "" {
		s.names[name] = o
		o.refs++ // a name keeps its object until the server stops
	}
	s.grantObject(c, o)
	c.ok(r.id, msgp.AppendUint(nil, o.id), []uint64{o.id})
}

func describe(o *object) string {
	if o.kind == kindObject {
		return fmt.Sprintf("%s %q", o.kind, o.custom.typeName)
	}
	return o.kind.String()
}

func stringArg(b []byte) string {
	s, _, _ := msgp.ReadString(b)
	return s
}

// initObject sets up a new object of o.kind from its creation parameter.
func (s *server) initObject(c *sconn, o *object, param []byte) (int, string) {
	switch o.kind {
	case kindDict, kindNamespace:
		o.dict = newODict()
	case kindList:
	case kindValue:
		v, err := s.storeValue(param)
		if err != nil {
			return codeBadRequest, err.Error()
		}
		o.val = v
	case kindArray:
		items, err := s.storeArray(param)
		if err != nil {
			return codeBadRequest, err.Error()
		}
		o.items = items
	case kindQueue, kindJoinable:
		n, _, err := msgp.ReadInt(param)
		if err != nil || n < 0 {
			return codeInvalid, "queue size must be >= 0"
		}
		o.queue = &queueState{max: int(n)}
	case kindLock, kindRLock:
		o.lock = &lockState{}
	case kindSemaphore, kindBoundedSemaphore:
		n, _, err := msgp.ReadInt(param)
		if err != nil || n < 0 {
			return codeInvalid, "semaphore value must be >= 0"
		}
		o.sem = &semState{value: int(n), initial: int(n)}
	case kindCondition:
		id, _, err := msgp.ReadUint(param)
		if err != nil {
			return codeBadRequest, "condition: bad lock id"
		}
		var l *object
		if id == 0 {
			s.nextObj++
			l = &object{id: s.nextObj, kind: kindLock, lock: &lockState{}}
			s.objects[l.id] = l
		} else if l = s.objects[id]; l == nil {
			return codeNoObject, fmt.Sprintf("condition lock %d", id)
		} else if l.kind != kindLock && l.kind != kindRLock {
			return codeWrongKind, "a condition's lock must be a Lock or an RLock"
		}
		l.refs++
		o.cond = &condState{lock: l}
	case kindEvent:
		o.event = &eventState{}
	case kindBarrier:
		n, _, err := msgp.ReadInt(param)
		if err != nil || n < 1 {
			return codeInvalid, "barrier parties must be >= 1"
		}
		o.bar = &barrierState{parties: int(n)}
	case kindObject:
		return s.newCustom(o, stringArg(param))
	default:
		return codeBadRequest, "unknown kind"
	}
	return codeOK, ""
}

// unwritten returns the size of the replies waiting to be written.
func (c *sconn) unwritten() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.out)
}

// ok sends a success reply. Caller holds s.mu (or owns c exclusively).
func (c *sconn) ok(id uint64, payload []byte, grants []uint64) {
	c.reply(id, codeOK, payload, grants)
}

// fail sends an error reply.
func (c *sconn) fail(id uint64, code int, msg string) {
	c.reply(id, code, msgp.AppendString(nil, msg), nil)
}

func (c *sconn) reply(id uint64, code int, payload []byte, grants []uint64) {
	if id == 0 || c.closed {
		return
	}
	c.wmu.Lock()
	start := len(c.out)
	c.out = appendReply(c.out, id, code, payload, grants)
	if len(c.out)-start > c.s.maxMsg {
		c.out = appendReply(c.out[:start], id, codeTooLarge,
			msgp.AppendString(nil, fmt.Sprintf("reply of %d bytes over the %d-byte limit", len(c.out)-start, c.s.maxMsg)), grants)
	}
	c.ends = append(c.ends, len(c.out))
	c.wmu.Unlock()
	if !c.kicked {
		c.kicked = true
		c.s.kicked = append(c.s.kicked, c)
	}
}

func appendReply(b []byte, id uint64, code int, payload []byte, grants []uint64) []byte {
	b = msgp.AppendArrayHeader(b, 4)
	b = msgp.AppendUint(b, id)
	b = msgp.AppendUint(b, uint64(code))
	if payload == nil {
		b = msgp.AppendNil(b)
	} else {
		b = append(b, payload...)
	}
	if grants == nil {
		return msgp.AppendNil(b)
	}
	b = msgp.AppendArrayHeader(b, len(grants))
	for _, g := range grants {
		b = msgp.AppendUint(b, g)
	}
	return b
}

// flush writes the queued replies; concurrent callers leave the writing to
// the one already at it.
func (c *sconn) flush() {
	c.wmu.Lock()
	if c.flushing {
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	for len(c.out) > 0 {
		out, ends := c.out, c.ends
		c.out, c.ends = c.spare[:0], nil
		c.wmu.Unlock()
		err := sendChunks(c.conn, out, ends, c.s.maxMsg)
		c.wmu.Lock()
		if cap(out) <= 1<<20 {
			c.spare = out[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.out, c.ends = nil, nil
			c.flushing = false
			c.wmu.Unlock()
			c.conn.Close() // the reader sees it and cleans up
			return
		}
	}
	c.flushing = false
	c.wmu.Unlock()
}

// Serve runs a manager server in this process on network ("unix", "tcp",
// "tcp4", "tcp6") and addr until ctx ends, then closes every connection
// and returns ctx's error (wrapped). authkey nil means process.AuthKey();
// a TCP address with an empty authkey is refused with ErrNoAuthKey, since
// anyone who can reach the port could call in. Objects live in this
// process; Connect reaches them from others, on this machine or another.
func Serve(ctx context.Context, network, addr string, authkey []byte, opts ...Option) error {
	o := buildOptions(opts)
	key := keyOrDefault(authkey)
	if strings.HasPrefix(network, "tcp") && len(key) == 0 {
		return ErrNoAuthKey
	}
	l, err := pipe.Listen(network, addr, key)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	bound := l.Addr().String()
	if network == "unix" {
		os.Chmod(bound, 0o600)
	}
	remember(network, bound, key)
	s := newServer(network, bound, o.maxMsg)
	if o.listening != nil {
		o.listening(network, bound)
	}
	s.serve(ctx, l)
	return fmt.Errorf("manager: serve: %w", ctx.Err())
}

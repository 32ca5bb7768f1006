//go:build linux

package manager

import (
	"slices"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// Queues and synchronisation objects live in the server as plain state
// guarded by s.mu. A call that must wait is parked as a *waiter in the
// object's list (and in its connection's waiting map, for cancellation
// and clean-up) and answered by the operation that frees it.

type queueState struct {
	max        int
	items      [][]byte
	head       int // items[head:] are queued
	getters    []*waiter
	putters    []*waiter // bounded queue full: each holds its item
	unfinished int       // Joinable: items put and not yet TaskDone
	joiners    []*waiter
}

func (q *queueState) len() int { return len(q.items) - q.head }

func (q *queueState) push(v []byte) { q.items = append(q.items, v) }

func (q *queueState) pop() []byte {
	v := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return v
}

type lockState struct {
	held      bool
	owner     *sconn
	count     int // RLock recursion depth
	ownerDied bool
	waiters   []*waiter
}

type semState struct {
	value, initial int
	waiters        []*waiter
}

type condState struct {
	lock    *object
	waiters []*waiter // waiting for a notify; then they queue on the lock
}

type eventState struct {
	set     bool
	waiters []*waiter
}

type barrierState struct {
	parties int
	broken  bool
	waiters []*waiter
}

// park records a waiting call.
func (s *server) park(c *sconn, r *sreq, o *object) *waiter {
	w := &waiter{c: c, id: r.id, obj: o, op: r.op}
	if r.id != 0 {
		c.waiting[r.id] = w
	}
	return w
}

// answer replies to a parked call.
func (s *server) answer(w *waiter, code int, payload []byte, grants []uint64) {
	if w.c.waiting != nil {
		delete(w.c.waiting, w.id)
	}
	w.c.reply(w.id, code, payload, grants)
}

func remove(list []*waiter, w *waiter) ([]*waiter, bool) {
	i := slices.Index(list, w)
	if i < 0 {
		return list, false
	}
	return slices.Delete(list, i, i+1), true
}

// cancelWaiter ends a parked call early: because its caller's ctx ended
// (reply true: it is answered codeCancelled, or for a Condition once the
// lock is back) or because its connection closed (reply false).
func (s *server) cancelWaiter(w *waiter, reply bool) {
	o := w.obj
	done := func() {
		if reply {
			s.answer(w, codeCancelled, nil, nil)
		}
	}
	switch {
	case o.queue != nil:
		q := o.queue
		var ok bool
		if q.getters, ok = remove(q.getters, w); ok {
			done()
		} else if q.putters, ok = remove(q.putters, w); ok {
			s.releaseValue(w.item)
			done()
		} else if q.joiners, ok = remove(q.joiners, w); ok {
			done()
		}
	case o.lock != nil:
		if w.op == opWait {
			// A Condition waiter queued to take its lock back: it must
			// return holding the lock, so a cancel only changes its
			// answer; a closed connection leaves the queue.
			if reply {
				w.cancel = true
			} else {
				o.lock.waiters, _ = remove(o.lock.waiters, w)
			}
			return
		}
		var ok bool
		if o.lock.waiters, ok = remove(o.lock.waiters, w); ok {
			done()
		}
	case o.sem != nil:
		var ok bool
		if o.sem.waiters, ok = remove(o.sem.waiters, w); ok {
			done()
		}
	case o.cond != nil:
		var ok bool
		if o.cond.waiters, ok = remove(o.cond.waiters, w); ok {
			if !reply {
				return
			}
			// Cancelled before a notify: it still returns holding the
			// lock, so it queues for it now.
			w.cancel = true
			s.reacquire(w, o.cond.lock)
		}
	case o.event != nil:
		var ok bool
		if o.event.waiters, ok = remove(o.event.waiters, w); ok {
			done()
		}
	case o.bar != nil:
		var ok bool
		if o.bar.waiters, ok = remove(o.bar.waiters, w); ok {
			done()
			s.breakBarrier(o.bar)
		}
	case o.custom != nil:
		if w.stop != nil {
			w.stop()
		}
	}
}

// ---- Queue ----

func (s *server) queueOp(c *sconn, r *sreq, o *object) (int, string) {
	q := o.queue
	joinable := o.kind == kindJoinable
	switch r.op {
	case opPut, opTryPut:
		if !args(r, 1) {
			return bad("Put: want value")
		}
		v, err := s.storeValue(r.args[0])
		if err != nil {
			return valueError(err)
		}
		if len(q.getters) > 0 {
			g := q.getters[0]
			q.getters = q.getters[1:]
			s.deliverItem(g, v)
		} else if q.max == 0 || q.len() < q.max {
			q.push(v)
		} else if r.op == opTryPut {
			s.releaseValue(v)
			return codeFull, ""
		} else {
			w := s.park(c, r, o)
			w.item = v
			q.putters = append(q.putters, w)
			return codeOK, ""
		}
		if joinable {
			q.unfinished++
		}
		c.ok(r.id, nil, nil)
	case opGet, opTryGet:
		if q.len() == 0 {
			if r.op == opTryGet {
				return codeEmpty, ""
			}
			q.getters = append(q.getters, s.park(c, r, o))
			return codeOK, ""
		}
		v := q.pop()
		if len(q.putters) > 0 {
			p := q.putters[0]
			q.putters = q.putters[1:]
			q.push(p.item)
			p.item = nil
			if joinable {
				q.unfinished++
			}
			s.answer(p, codeOK, nil, nil)
		}
		grants := s.grantValue(c, v, nil)
		s.releaseValue(v)
		c.ok(r.id, v, grants)
	case opLen:
		c.ok(r.id, msgp.AppendUint(nil, uint64(q.len())), nil)
	case opEmpty:
		c.ok(r.id, msgp.AppendBool(nil, q.len() == 0), nil)
	case opFull:
		c.ok(r.id, msgp.AppendBool(nil, q.max > 0 && q.len() >= q.max), nil)
	case opTaskDone:
		if !joinable {
			return unknownOp(r, o)
		}
		if q.unfinished == 0 {
			return codeTaskDone, ""
		}
		q.unfinished--
		if q.unfinished == 0 {
			for _, j := range q.joiners {
				s.answer(j, codeOK, nil, nil)
			}
			q.joiners = nil
		}
		c.ok(r.id, nil, nil)
	case opJoin:
		if !joinable {
			return unknownOp(r, o)
		}
		if q.unfinished == 0 {
			c.ok(r.id, nil, nil)
		} else {
			q.joiners = append(q.joiners, s.park(c, r, o))
		}
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// deliverItem hands an item straight to a parked getter.
func (s *server) deliverItem(g *waiter, v []byte) {
	grants := s.grantValue(g.c, v, nil)
	s.releaseValue(v)
	s.answer(g, codeOK, v, grants)
}

// ---- Lock, RLock ----

func (s *server) lockOp(c *sconn, r *sreq, o *object) (int, string) {
	l := o.lock
	rlock := o.kind == kindRLock
	switch r.op {
	case opAcquire, opTryAcquire:
		if l.held && rlock && l.owner == c {
			l.count++
			s.acquired(c, r, false)
			return codeOK, ""
		}
		if !l.held {
			died := s.take(o, c, 1)
			s.acquired(c, r, died)
			return codeOK, ""
		}
		if r.op == opTryAcquire {
			c.ok(r.id, msgp.AppendBool(nil, false), nil)
			return codeOK, ""
		}
		l.waiters = append(l.waiters, s.park(c, r, o))
	case opUnlock:
		if !l.held {
			if rlock {
				return codeNotOwner, ""
			}
			return codeTooManyReleases, "release of an unlocked Lock"
		}
		if rlock && l.owner != c {
			return codeNotOwner, ""
		}
		l.count--
		if l.count > 0 {
			c.ok(r.id, nil, nil)
			return codeOK, ""
		}
		s.unlock(o)
		c.ok(r.id, nil, nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// acquired answers a successful Acquire or TryAcquire.
func (s *server) acquired(c *sconn, r *sreq, died bool) {
	code := codeOK
	if died {
		code = codeOwnerDied
	}
	var payload []byte
	if r.op == opTryAcquire {
		payload = msgp.AppendBool(nil, true)
	}
	c.reply(r.id, code, payload, nil)
}

// take gives the lock to c; it reports whether the previous holder died
// holding it (which the taker is told once).
func (s *server) take(o *object, c *sconn, count int) (died bool) {
	l := o.lock
	l.held, l.owner, l.count = true, c, count
	c.owned[o] = struct{}{}
	died, l.ownerDied = l.ownerDied, false
	return died
}

// unlock releases the lock and hands it to the first waiter, if any.
func (s *server) unlock(o *object) {
	l := o.lock
	if l.owner != nil && l.owner.owned != nil {
		delete(l.owner.owned, o)
	}
	l.held, l.owner, l.count = false, nil, 0
	if len(l.waiters) == 0 {
		return
	}
	w := l.waiters[0]
	l.waiters = l.waiters[1:]
	s.handOver(o, w)
}

// handOver gives the free lock o to the parked call w and answers it.
func (s *server) handOver(o *object, w *waiter) {
	count := 1
	if w.op == opWait {
		count = w.index // a Condition waiter gets its recursion depth back
	}
	died := s.take(o, w.c, count)
	code := codeOK
	switch {
	case w.cancel:
		code = codeCancelled
	case died:
		code = codeOwnerDied
	}
	var payload []byte
	if w.op == opTryAcquire {
		payload = msgp.AppendBool(nil, true)
	}
	s.answer(w, code, payload, nil)
}

// ownerDied releases a lock whose holder's connection closed. The next
// taker is told (ErrOwnerDied), as a robust mutex reports EOWNERDEAD.
func (s *server) ownerDied(o *object, c *sconn) {
	if o.lock == nil || o.lock.owner != c {
		return
	}
	o.lock.ownerDied = true
	s.unlock(o)
}

// ---- Semaphore, BoundedSemaphore ----

func (s *server) semOp(c *sconn, r *sreq, o *object) (int, string) {
	m := o.sem
	switch r.op {
	case opAcquire, opTryAcquire:
		if m.value > 0 {
			m.value--
			s.acquired(c, r, false)
			return codeOK, ""
		}
		if r.op == opTryAcquire {
			c.ok(r.id, msgp.AppendBool(nil, false), nil)
			return codeOK, ""
		}
		m.waiters = append(m.waiters, s.park(c, r, o))
	case opUnlock:
		if len(m.waiters) > 0 {
			w := m.waiters[0]
			m.waiters = m.waiters[1:]
			s.answer(w, codeOK, nil, nil)
		} else {
			if o.kind == kindBoundedSemaphore && m.value >= m.initial {
				return codeTooManyReleases, ""
			}
			m.value++
		}
		c.ok(r.id, nil, nil)
	case opSemValue:
		c.ok(r.id, msgp.AppendUint(nil, uint64(m.value)), nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// ---- Condition ----

func (s *server) condOp(c *sconn, r *sreq, o *object) (int, string) {
	cv := o.cond
	l := cv.lock
	switch r.op {
	case opAcquire, opTryAcquire, opUnlock:
		return s.lockOp(c, r, l)
	case opWait:
		if !l.lock.held || l.lock.owner != c {
			return codeNotOwner, ""
		}
		w := s.park(c, r, o)
		w.index = l.lock.count
		cv.waiters = append(cv.waiters, w)
		s.unlock(l)
	case opNotify:
		if !args(r, 1) {
			return bad("Notify: want n")
		}
		n, _, err := msgp.ReadInt(r.args[0])
		if err != nil {
			return bad("Notify: bad n")
		}
		if !l.lock.held || l.lock.owner != c {
			return codeNotOwner, ""
		}
		for len(cv.waiters) > 0 && (n < 0 || n > 0) {
			w := cv.waiters[0]
			cv.waiters = cv.waiters[1:]
			s.reacquire(w, l)
			n--
		}
		c.ok(r.id, nil, nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// reacquire queues a Condition waiter for its lock (or gives it the lock
// at once if it is free).
func (s *server) reacquire(w *waiter, l *object) {
	w.obj = l
	if !l.lock.held {
		s.handOver(l, w)
		return
	}
	l.lock.waiters = append(l.lock.waiters, w)
}

// ---- Event ----

func (s *server) eventOp(c *sconn, r *sreq, o *object) (int, string) {
	e := o.event
	switch r.op {
	case opSet:
		e.set = true
		for _, w := range e.waiters {
			s.answer(w, codeOK, nil, nil)
		}
		e.waiters = nil
		c.ok(r.id, nil, nil)
	case opClear:
		e.set = false
		c.ok(r.id, nil, nil)
	case opIsSet:
		c.ok(r.id, msgp.AppendBool(nil, e.set), nil)
	case opWait:
		if e.set {
			c.ok(r.id, nil, nil)
		} else {
			e.waiters = append(e.waiters, s.park(c, r, o))
		}
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// ---- Barrier ----

func (s *server) barrierOp(c *sconn, r *sreq, o *object) (int, string) {
	b := o.bar
	switch r.op {
	case opWait:
		if b.broken {
			return codeBroken, ""
		}
		index := len(b.waiters)
		if index+1 == b.parties {
			for _, w := range b.waiters {
				s.answer(w, codeOK, msgp.AppendUint(nil, uint64(w.index)), nil)
			}
			b.waiters = nil
			c.ok(r.id, msgp.AppendUint(nil, uint64(index)), nil)
			return codeOK, ""
		}
		w := s.park(c, r, o)
		w.index = index
		b.waiters = append(b.waiters, w)
	case opAbort:
		s.breakBarrier(b)
		c.ok(r.id, nil, nil)
	case opReset:
		if len(b.waiters) > 0 {
			s.breakBarrier(b)
		}
		b.broken = false
		c.ok(r.id, nil, nil)
	case opBroken:
		c.ok(r.id, msgp.AppendBool(nil, b.broken), nil)
	case opNWaiting:
		c.ok(r.id, msgp.AppendUint(nil, uint64(len(b.waiters))), nil)
	case opParties:
		c.ok(r.id, msgp.AppendUint(nil, uint64(b.parties)), nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// breakBarrier breaks the barrier: every waiter gets ErrBroken, and so
// does every Wait until a Reset.
func (s *server) breakBarrier(b *barrierState) {
	b.broken = true
	for _, w := range b.waiters {
		s.answer(w, codeBroken, msgp.AppendString(nil, ""), nil)
	}
	b.waiters = nil
}

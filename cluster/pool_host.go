//go:build linux

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ServePool makes this process a host of pool name: it starts a local pool
// of worker processes, pool.New(opts...) (pool.Workers, MaxTasksPerChild,
// TaskTimeout, MemoryLimit, CPUTime and Initializer all apply), and feeds
// it the tasks that callers of OpenPool with this same build of the program
// send, until ctx ends. Tasks of another build are never taken.
//
// A host takes only as many tasks as its workers can start within a few
// milliseconds (for long tasks: one per worker, and one more waiting), and
// tells the server every AckWait/4 that it is still working on those it
// holds, so that a long task is never given to another host while this one
// lives. A task whose worker dies fails with *pool.WorkerDiedError, as
// locally; it is not given to another host.
//
// When ctx ends, ServePool stops taking tasks, hands back those it took but
// had not started, lets the running ones finish and report, stops its
// workers and returns nil. It returns an error if it cannot serve: a bad
// name or option, the local pool failing to start workers (pool.ErrBroken),
// or the connection closing.
func ServePool(ctx context.Context, c *Cluster, name string, opts ...pool.Option) error {
	if err := checkPoolName(name); err != nil {
		return err
	}
	p, err := pool.New(opts...)
	if err != nil {
		return err
	}
	defer func() {
		p.Close()
		jctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if p.Join(jctx) != nil {
			p.Terminate()
		}
	}()
	hostname, _ := os.Hostname()
	r := p.Runner()
	h := &host{
		c:       c,
		subj:    newPoolSubjects(name, buildID()),
		r:       r,
		workers: r.Workers(),
		info: hostInfo{ID: newID(), Build: buildID(), Workers: r.Workers(),
			Hostname: hostname, Pid: os.Getpid()},
		held:    map[*held]struct{}{},
		callers: map[string]*callerState{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	return h.serve(ctx)
}

// host is one ServePool.
type host struct {
	c       *Cluster
	subj    poolSubjects
	r       driver.Runner
	workers int
	info    hostInfo
	cons    jetstream.Consumer
	subs    []*nats.Subscription

	mu       sync.Mutex
	queue    []*held // taken, not started
	held     map[*held]struct{}
	running  int // chunks in the local pool
	reserved int // asked of the server in pending fetches, not arrived
	fetching int // pending fetches
	callers  map[string]*callerState
	rate     float64       // chunks finished per second, measured
	finished int           // chunks finished since the last measurement
	ackWait  time.Duration // the shortest AckWait of the consumer and the tasks seen
	draining bool
	fatal    error

	wake chan struct{} // something changed for the fetch loop
	stop chan struct{} // closed when the host is done: ends keepAlive

	cancelServe context.CancelFunc // ends serving: the connection closed
	wg          sync.WaitGroup
}

// held is a task message this host holds: queued, running, or reporting.
type held struct {
	msg      jetstream.Msg
	t        *task
	nextBeat time.Time
	cancel   context.CancelFunc // set once it runs
	dropped  bool               // its caller cancelled it or is gone
}

type callerState struct {
	lastSeen  time.Time
	gone      bool
	probing   bool
	cancelled map[uint64]bool
}

const (
	maxPullWait = 5 * time.Second // a fetch waits at most this long for tasks
	tick        = 25 * time.Millisecond
	runAhead    = 10 * time.Millisecond // work queued in the local pool beyond its workers
	pullAhead   = 20 * time.Millisecond // work taken from the server beyond that
	maxAhead    = 512                   // chunks, either way
)

func (h *host) serve(ctx context.Context) error {
	ctx, h.cancelServe = context.WithCancel(ctx)
	defer h.cancelServe()
	js := h.c.js
	if _, err := ensurePoolStream(ctx, js, h.subj); err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, h.subj.stream, h.subj.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, h.subj.stream, consumerConfig(h.subj, defaultAckWait, defaultMaxDeliver))
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = js.Consumer(ctx, h.subj.stream, h.subj.consumer)
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: serve pool %s: consumer: %w", h.subj.name, err)
	}
	h.cons = cons
	h.ackWait = defaultAckWait
	if ci := cons.CachedInfo(); ci != nil && ci.Config.AckWait > 0 {
		h.ackWait = ci.Config.AckWait
	}
	nc := h.c.nc
	for subject, f := range map[string]nats.MsgHandler{
		h.subj.control:  h.onControl,
		h.subj.hostsAsk: func(*nats.Msg) { h.announce(false) },
	} {
		s, err := nc.Subscribe(subject, f)
		if err != nil {
			h.unsubscribe()
			return fmt.Errorf("cluster: serve pool %s: %w", h.subj.name, err)
		}
		h.subs = append(h.subs, s)
	}
	h.announce(false)
	h.wg.Add(1)
	go h.keepAlive()

	err = h.pull(ctx)

	// Drain: hand back what has not started, let the rest finish.
	h.mu.Lock()
	h.draining = true
	q := h.queue
	h.queue = nil
	for _, hd := range q {
		delete(h.held, hd)
		hd.msg.Nak()
	}
	h.mu.Unlock()
	h.announce(true)
	for {
		h.mu.Lock()
		n := len(h.held) + h.fetching
		h.mu.Unlock()
		if n == 0 {
			break
		}
		<-h.wake
	}
	close(h.stop)
	h.unsubscribe()
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fatal != nil {
		return h.fatal
	}
	return err
}

func (h *host) unsubscribe() {
	for _, s := range h.subs {
		s.Unsubscribe()
	}
}

func (h *host) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *host) announce(bye bool) {
	info := h.info
	info.Bye = bye
	b, _ := json.Marshal(info)
	h.c.nc.Publish(h.subj.hosts, b)
}

// limits returns how many chunks may run in the local pool, and how many
// this host may hold in all (running or queued), from the measured time
// per chunk: enough that the workers never wait for the network, and no
// more, so that long tasks are not hoarded by one host.
func (h *host) limitsLocked() (run, hold int) {
	ahead := func(d time.Duration) int {
		return min(maxAhead, int(math.Ceil(d.Seconds()*h.rate)))
	}
	run = h.workers + ahead(runAhead)
	return run, run + max(h.workers, ahead(pullAhead))
}

// pull fetches tasks while there is room, until ctx ends.
func (h *host) pull(ctx context.Context) error {
	backoff := 10 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return nil
		}
		h.mu.Lock()
		_, hold := h.limitsLocked()
		free := hold - (len(h.queue) + h.running + h.reserved)
		ok := h.fatal == nil && h.fetching < 2 && free >= max(1, hold/4)
		if ok {
			h.reserved += free
			h.fetching++
		}
		h.mu.Unlock()
		if !ok {
			select {
			case <-h.wake:
			case <-ctx.Done():
			}
			continue
		}
		// A fetch ends before AckWait/2: a host that stops (SIGSTOP, a
		// long pause) must not keep a pending fetch that the server would
		// fill with the tasks redelivered from its own.
		fctx, cancel := context.WithTimeout(ctx, h.pullWait())
		batch, err := h.cons.Fetch(free, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			h.mu.Lock()
			h.reserved -= free
			h.fetching--
			h.mu.Unlock()
			if h.c.nc.IsClosed() {
				return fmt.Errorf("cluster: serve pool %s: %w", h.subj.name, nats.ErrConnectionClosed)
			}
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Second)
			case <-ctx.Done():
			}
			continue
		}
		backoff = 10 * time.Millisecond
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer cancel()
			n := 0
			for m := range batch.Messages() {
				n++
				h.onTask(m)
			}
			h.mu.Lock()
			h.reserved -= free - n
			h.fetching--
			h.mu.Unlock()
			h.poke()
		}()
	}
}

func (h *host) pullWait() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return min(max(h.ackWait/2, 50*time.Millisecond), maxPullWait)
}

// onTask takes one task message.
func (h *host) onTask(m jetstream.Msg) {
	t, err := parseTask(m.Headers())
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reserved--
	switch {
	case err != nil:
		m.TermWithReason("mpgo: bad task header: " + err.Error())
		return
	case h.draining:
		m.Nak()
		return
	}
	cs := h.callerLocked(t.caller)
	if cs.gone || cs.cancelled[t.chunk] {
		m.Ack() // dropped: nobody waits for it
		return
	}
	h.ackWait = min(h.ackWait, t.ackWait)
	hd := &held{msg: m, t: t, nextBeat: time.Now().Add(t.ackWait / 4)}
	h.held[hd] = struct{}{}
	h.queue = append(h.queue, hd)
	h.dispatchLocked()
}

func (h *host) callerLocked(id string) *callerState {
	cs := h.callers[id]
	if cs == nil {
		cs = &callerState{}
		h.callers[id] = cs
	}
	return cs
}

// dispatchLocked starts queued chunks, in order, while the local pool has
// room. A chunk of a caller not heard from lately waits until a probe says
// it lives: a dead caller's tasks are not run.
func (h *host) dispatchLocked() {
	run, _ := h.limitsLocked()
	now := time.Now()
	keep := h.queue[:0]
	for _, hd := range h.queue {
		cs := h.callerLocked(hd.t.caller)
		switch {
		case cs.gone || cs.cancelled[hd.t.chunk]:
			delete(h.held, hd)
			hd.msg.Ack()
		case now.Sub(cs.lastSeen) > callerStale:
			h.probeLocked(hd.t.caller, cs)
			keep = append(keep, hd)
		case h.running < run && !h.draining:
			h.running++
			ctx, cancel := context.WithCancel(context.Background())
			hd.cancel = cancel
			h.wg.Add(1)
			go h.runChunk(ctx, hd)
		default:
			keep = append(keep, hd)
		}
	}
	clear(h.queue[len(keep):])
	h.queue = keep
}

// probeLocked asks a caller whether it lives (its results subscription
// answers). No responders means it is gone: its tasks are dropped.
func (h *host) probeLocked(id string, cs *callerState) {
	if cs.probing || cs.gone {
		return
	}
	cs.probing = true
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_, err := h.c.nc.Request(h.subj.result(id), []byte{msgPing}, probeTimeout)
		h.mu.Lock()
		defer h.mu.Unlock()
		cs.probing = false
		switch {
		case err == nil:
			cs.lastSeen = time.Now()
		case errors.Is(err, nats.ErrNoResponders):
			h.goneLocked(cs, id)
		}
		h.dispatchLocked()
	}()
}

// goneLocked drops a caller's tasks: those queued are acked (removed), the
// running ones have their ctx cancelled.
func (h *host) goneLocked(cs *callerState, id string) {
	cs.gone = true
	cs.cancelled = nil
	for hd := range h.held {
		if hd.t.caller == id {
			hd.dropped = true
			if hd.cancel != nil {
				hd.cancel()
			}
		}
	}
	h.dispatchLocked()
}

func (h *host) onControl(m *nats.Msg) {
	kind, id, chunks, err := parseControl(m.Data)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.callerLocked(id)
	switch kind {
	case ctlAlive:
		stale := time.Since(cs.lastSeen) > callerStale
		cs.lastSeen = time.Now()
		if stale {
			h.dispatchLocked()
		}
	case ctlGone:
		h.goneLocked(cs, id)
	case ctlCancel:
		if cs.gone {
			return
		}
		if cs.cancelled == nil {
			cs.cancelled = map[uint64]bool{}
		}
		for _, c := range chunks {
			cs.cancelled[c] = true
		}
		for hd := range h.held {
			if hd.t.caller == id && cs.cancelled[hd.t.chunk] {
				hd.dropped = true
				if hd.cancel != nil {
					hd.cancel()
				}
			}
		}
		h.dispatchLocked()
	}
}

// keepAlive tells the server every AckWait/4 that this host still works on
// the tasks it holds, measures, announces the host, and checks on callers.
func (h *host) keepAlive() {
	defer h.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	lastAnnounce, lastRate := time.Now(), time.Now()
	for {
		var now time.Time
		select {
		case <-h.stop:
			return
		case now = <-t.C:
		}
		h.mu.Lock()
		if h.fatal == nil && h.c.nc.IsClosed() {
			h.fatal = fmt.Errorf("cluster: serve pool %s: %w", h.subj.name, nats.ErrConnectionClosed)
			h.cancelServe()
		}
		h.rate = 0.75*h.rate + 0.25*float64(h.finished)/now.Sub(lastRate).Seconds()
		h.finished, lastRate = 0, now
		for hd := range h.held {
			if now.After(hd.nextBeat) {
				hd.msg.InProgress()
				hd.nextBeat = now.Add(hd.t.ackWait / 4)
			}
		}
		for id, cs := range h.callers {
			switch {
			case cs.gone || now.Sub(cs.lastSeen) < callerStale:
			case h.holdsLocked(id):
				h.probeLocked(id, cs)
			case now.Sub(cs.lastSeen) > 10*time.Minute:
				delete(h.callers, id)
			}
		}
		h.mu.Unlock()
		if now.Sub(lastAnnounce) >= hostBeat {
			lastAnnounce = now
			h.mu.Lock()
			draining := h.draining
			h.mu.Unlock()
			if !draining {
				h.announce(false)
			}
		}
	}
}

func (h *host) holdsLocked(caller string) bool {
	for hd := range h.held {
		if hd.t.caller == caller {
			return true
		}
	}
	return false
}

// runChunk runs one chunk in the local pool and sends its results to the
// caller as they come (several per message when they come faster than the
// caller confirms them), then acks the task: a result is confirmed before
// its task leaves the stream.
func (h *host) runChunk(ctx context.Context, hd *held) {
	defer h.wg.Done()
	c := driver.Chunk{Task: hd.t.name, Start: hd.t.start, Count: hd.t.count, Args: hd.msg.Data(), StopOnError: hd.t.stop}
	var (
		mu   sync.Mutex
		out  resultBatch
		sig  = make(chan struct{}, 1)
		done = make(chan error, 1)
	)
	go func() {
		done <- h.r.Run(ctx, c, func(res driver.Result) bool {
			mu.Lock()
			out.add(res)
			mu.Unlock()
			select {
			case sig <- struct{}{}:
			default:
			}
			return true
		})
	}()
	var runErr error
	delivered := true
	for finished := false; !finished; {
		select {
		case runErr = <-done:
			finished = true
			h.ranChunk()
		case <-sig:
		}
		mu.Lock()
		b := out
		out = resultBatch{}
		mu.Unlock()
		h.mu.Lock()
		dropped := hd.dropped
		h.mu.Unlock()
		if delivered && !dropped && len(b.recs) > 0 {
			delivered = h.send(hd, b)
		}
	}
	hd.cancel()
	h.mu.Lock()
	dropped := hd.dropped
	h.mu.Unlock()
	switch {
	case dropped:
		hd.msg.Ack() // nobody waits for it any more
	case !delivered:
		// The caller did not confirm the results (it does not answer, and
		// this host is stopping): let another host run the task again.
		hd.msg.Nak()
	case runErr == nil:
		hd.msg.Ack()
	default:
		// The local pool failed (terminated, or broken): hand the task back.
		hd.msg.Nak()
		if errors.Is(runErr, pool.ErrBroken) {
			h.mu.Lock()
			if h.fatal == nil {
				h.fatal = fmt.Errorf("cluster: serve pool %s: %w", h.subj.name, runErr)
			}
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	delete(h.held, hd)
	h.dispatchLocked()
	h.mu.Unlock()
	h.poke()
}

// ranChunk records that a chunk left the local pool.
func (h *host) ranChunk() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running--
	h.finished++
	h.dispatchLocked()
}

// resultBatch is encoded result records, with where each ends.
type resultBatch struct {
	b    []byte
	recs []recEnd
}

type recEnd struct {
	index int
	end   int
}

func (rb *resultBatch) add(res driver.Result) {
	rb.b = appendResult(rb.b, res)
	rb.recs = append(rb.recs, recEnd{res.Index, len(rb.b)})
}

// send delivers results to the task's caller, in messages within the
// payload limit, each confirmed by the caller. It returns false if the
// caller is gone or does not confirm while the host is stopping.
func (h *host) send(hd *held, rb resultBatch) bool {
	limit := int(h.c.nc.MaxPayload()) - 64
	prefix := appendResultsHeader(nil, hd.t.chunk)
	msg := append([]byte(nil), prefix...)
	from := 0
	for i, r := range rb.recs {
		rec := rb.b[from:r.end]
		from = r.end
		if len(prefix)+len(rec) > limit {
			rec = appendResult(nil, driver.Result{Index: r.index, Err: fmt.Errorf(
				"cluster: task %d: its result is %d bytes, over the server's payload limit of %d bytes (max_payload)", r.index, len(rec), limit+64)})
		}
		if len(msg)+len(rec) > limit {
			if !h.request(hd, msg) {
				return false
			}
			msg = append(msg[:0], prefix...)
		}
		msg = append(msg, rec...)
		if i == len(rb.recs)-1 {
			return h.request(hd, msg)
		}
	}
	return true
}

// request sends one results message until the caller confirms it.
func (h *host) request(hd *held, msg []byte) bool {
	subject := h.subj.result(hd.t.caller)
	backoff := 100 * time.Millisecond
	for {
		_, err := h.c.nc.Request(subject, msg, confirmWait)
		switch {
		case err == nil:
			return true
		case errors.Is(err, nats.ErrNoResponders):
			h.mu.Lock()
			h.goneLocked(h.callerLocked(hd.t.caller), hd.t.caller)
			h.mu.Unlock()
			return false
		case h.c.nc.IsClosed():
			return false
		}
		h.mu.Lock()
		stop := h.draining || hd.dropped
		h.mu.Unlock()
		if stop {
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

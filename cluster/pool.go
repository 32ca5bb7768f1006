//go:build linux

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OpenPool returns a pool whose tasks run on the hosts that serve pool name
// (ServePool) with this same build of the program. Every call of package
// pool works on it (Map, MapAsync, Imap, ImapUnordered, Apply, ApplyAsync,
// Chunksize, Progress, OnResult, OnError, Close, Join, Terminate), so a
// program moves from one machine to many by changing the line that makes
// the pool. It accepts the options AckWait and MaxDeliver: they are set on
// the pool's consumer, shared by every caller of the pool name, so the
// callers of one pool should agree on them.
//
// OpenPool returns once a host serves name with this build. If none does
// before ctx ends, the error matches ErrNoWorkers and says what was seen:
// no host at all, or only hosts of another build (which never run this
// build's tasks). Later, while no host is up, tasks wait in the stream for
// one: bound such waits with the call's ctx. If the connection closes, the
// calls in progress fail with an error matching nats.ErrConnectionClosed.
//
// Delivery across hosts: a task's error, or the death of its worker process
// on a live host (*pool.WorkerDiedError), fails that task at once, as
// locally. A host that dies or is cut off has its unfinished tasks
// delivered again to other hosts after AckWait (a live host keeps its tasks,
// however long they run); the first result per task is kept and later ones
// are dropped and counted (see Stats). A task delivered MaxDeliver times
// without a result fails with an error matching ErrLost. So a task runs at
// least once, and may run more than once: tasks should be idempotent.
// Cancelling a call drops its tasks not yet started on the hosts and
// cancels the ctx of those running; so does the caller's death, noticed by
// the hosts within about two seconds.
func OpenPool(ctx context.Context, c *Cluster, name string, opts ...Option) (*pool.Pool, error) {
	o, err := parseOptions("OpenPool", opts, "AckWait", "MaxDeliver")
	if err != nil {
		return nil, err
	}
	if err := checkPoolName(name); err != nil {
		return nil, err
	}
	r := &poolRunner{
		c:         c,
		id:        newID(),
		subj:      newPoolSubjects(name, buildID()),
		ackWait:   o.ackWait,
		maxDel:    o.maxDeliver,
		hosts:     map[string]seenHost{},
		runs:      map[uint64]*chunkRun{},
		cancelled: map[uint64]bool{},
		hostUp:    make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if err := r.open(ctx); err != nil {
		r.shutdown()
		return nil, err
	}
	p, err := pool.Open(r)
	if err != nil {
		r.shutdown()
		return nil, err
	}
	k := weak.Make(p)
	runners.Store(k, r)
	runtime.AddCleanup(p, func(k weak.Pointer[pool.Pool]) { runners.Delete(k) }, k)
	return p, nil
}

// PoolStats describes a pool made by OpenPool.
type PoolStats struct {
	Hosts   int // live hosts serving the pool with this build
	Workers int // their worker processes in all
	// Duplicates counts results dropped because their task already had
	// one: a task redelivered after AckWait whose first host was alive
	// after all (stopped, or cut off and back) and finished it too.
	Duplicates int64
	// Lost counts tasks failed with ErrLost.
	Lost int64
}

// runners maps the pools OpenPool made to their runners, for Stats, without
// keeping a pool alive.
var runners sync.Map // weak.Pointer[pool.Pool] -> *poolRunner

// Stats returns the statistics of a pool made by OpenPool, and false for
// any other pool.
func Stats(p *pool.Pool) (PoolStats, bool) {
	v, ok := runners.Load(weak.Make(p))
	if !ok {
		return PoolStats{}, false
	}
	r := v.(*poolRunner)
	hosts, workers := r.liveHosts()
	return PoolStats{Hosts: hosts, Workers: workers, Duplicates: r.dups.Load(), Lost: r.lost.Load()}, true
}

// poolRunner is the caller's side of a pool across hosts: the
// driver.Runner behind the *pool.Pool of OpenPool.
type poolRunner struct {
	c       *Cluster
	id      string // this caller instance, the token of its results subject
	subj    poolSubjects
	ackWait time.Duration
	maxDel  int
	js      jetstream.JetStream
	stream  jetstream.Stream
	subs    []*nats.Subscription

	mu         sync.Mutex
	hosts      map[string]seenHost
	runs       map[uint64]*chunkRun // by chunk id
	cancelled  map[uint64]bool      // chunks of calls cancelled while they ran
	next       uint64               // last chunk id given
	active     int                  // Run calls in progress
	closing    bool
	terminated bool
	stopped    bool

	hostUp chan struct{} // a host of this build appeared
	stop   chan struct{} // closed by shutdown
	wg     sync.WaitGroup
	dups   atomic.Int64
	lost   atomic.Int64
}

type seenHost struct {
	info hostInfo
	at   time.Time
}

// chunkRun is one Run call: a chunk, sent as one message or, when its
// arguments exceed the server's payload limit, as several.
type chunkRun struct {
	task    string
	start   int
	count   int
	deliver func(driver.Result) bool
	parts   []part
	r       *poolRunner

	mu     sync.Mutex // serialises deliver calls with the end of Run
	seen   []uint64
	nseen  int
	closed bool
	done   chan struct{} // every item has its result
	fail   chan error    // the run failed as a whole (buffered)
}

type part struct {
	id           uint64
	start, count int
	args         []byte
}

func (r *poolRunner) open(ctx context.Context) error {
	js, err := jetstream.New(r.c.nc,
		jetstream.WithPublishAsyncErrHandler(r.onPublishErr),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("cluster: open pool %s: %w", r.subj.name, err)
	}
	r.js = js
	if r.stream, err = ensurePoolStream(ctx, js, r.subj); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, r.subj.stream, consumerConfig(r.subj, r.ackWait, r.maxDel)); err != nil {
		return fmt.Errorf("cluster: open pool %s: consumer: %w", r.subj.name, err)
	}
	nc := r.c.nc
	sub, err := nc.Subscribe(r.subj.result(r.id), r.onResults)
	if err != nil {
		return fmt.Errorf("cluster: open pool %s: %w", r.subj.name, err)
	}
	// Results must never be dropped for a slow reader: the hosts wait for
	// each message to be confirmed anyway, which bounds what is pending.
	sub.SetPendingLimits(-1, -1)
	r.subs = append(r.subs, sub)
	for subject, h := range map[string]nats.MsgHandler{r.subj.hosts: r.onHost, r.subj.advisory(): r.onAdvisory} {
		s, err := nc.Subscribe(subject, h)
		if err != nil {
			return fmt.Errorf("cluster: open pool %s: %w", r.subj.name, err)
		}
		r.subs = append(r.subs, s)
	}
	// Ask the hosts to announce themselves now rather than within a second.
	if err := nc.Publish(r.subj.hostsAsk, nil); err != nil {
		return fmt.Errorf("cluster: open pool %s: %w", r.subj.name, err)
	}
	r.wg.Add(1)
	go r.beat()
	ask := time.NewTicker(hostBeat)
	defer ask.Stop()
	for {
		if n, _ := r.liveHosts(); n > 0 {
			return nil
		}
		select {
		case <-r.hostUp:
		case <-ask.C:
			nc.Publish(r.subj.hostsAsk, nil)
		case <-ctx.Done():
			return fmt.Errorf("%w: pool %q: %s (%v)", ErrNoWorkers, r.subj.name, r.sawHosts(), ctx.Err())
		}
	}
}

// ensurePoolStream creates the pool's stream, or finds it.
func ensurePoolStream(ctx context.Context, js jetstream.JetStream, s poolSubjects) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      s.stream,
		Subjects:  []string{s.all},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: pool %s: stream: %w", s.name, err)
	}
	return st, nil
}

func consumerConfig(s poolSubjects, ackWait time.Duration, maxDeliver int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.consumer,
		FilterSubject: s.tasks,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		// Each host bounds what it takes by its own workers; this only
		// bounds the sum.
		MaxAckPending: 1 << 16,
	}
}

// sawHosts describes the hosts seen, for ErrNoWorkers.
func (r *poolRunner) sawHosts() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var other []string
	for _, h := range r.hosts {
		if h.info.Build != r.subj.build {
			other = append(other, fmt.Sprintf("%s (pid %d, build %s, %d workers)", h.info.Hostname, h.info.Pid, h.info.Build, h.info.Workers))
		}
	}
	if len(other) == 0 {
		return "no host serves it at all"
	}
	sort.Strings(other)
	return fmt.Sprintf("only hosts of another build of the program serve it: %s; this program is build %s (a host must run the same binary)",
		strings.Join(other, ", "), r.subj.build)
}

// liveHosts returns the live hosts of this build and their workers.
func (r *poolRunner) liveHosts() (hosts, workers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, h := range r.hosts {
		if h.info.Build == r.subj.build && now.Sub(h.at) < hostStale {
			hosts++
			workers += h.info.Workers
		}
	}
	return hosts, workers
}

func (r *poolRunner) onHost(m *nats.Msg) {
	var h hostInfo
	if err := json.Unmarshal(m.Data, &h); err != nil || h.ID == "" {
		return
	}
	r.mu.Lock()
	if h.Bye {
		delete(r.hosts, h.ID)
	} else {
		r.hosts[h.ID] = seenHost{h, time.Now()}
	}
	r.mu.Unlock()
	if h.Build == r.subj.build && !h.Bye {
		select {
		case r.hostUp <- struct{}{}:
		default:
		}
	}
}

// beat tells the hosts that this caller lives, so that they run its tasks,
// and forgets hosts gone silent.
func (r *poolRunner) beat() {
	defer r.wg.Done()
	t := time.NewTicker(callerBeat)
	defer t.Stop()
	msg := appendControl(nil, ctlAlive, r.id)
	for {
		r.c.nc.Publish(r.subj.control, msg)
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		for id, h := range r.hosts {
			if time.Since(h.at) > 10*hostStale {
				delete(r.hosts, id)
			}
		}
		var runs []*chunkRun
		if r.c.nc.IsClosed() {
			// No result can arrive any more: fail the calls rather than
			// let them wait.
			for _, run := range r.runs {
				runs = append(runs, run)
			}
		}
		r.mu.Unlock()
		for _, run := range runs {
			select {
			case run.fail <- fmt.Errorf("cluster: pool %s: %w", r.subj.name, nats.ErrConnectionClosed):
			default:
			}
		}
	}
}

// Workers is the number of worker processes of the live hosts of this
// build (at least 1: the pool sizes chunks by it).
func (r *poolRunner) Workers() int {
	_, w := r.liveHosts()
	return max(w, 1)
}

// InFlight is how many chunks the pool may keep in Run at once, for a pool
// package that asks (an optional driver interface): far more than four
// per worker, since a chunk spends most of its time in transit and the
// hosts take only what their workers can start; the rest waits in the
// stream.
func (r *poolRunner) InFlight() int { return max(maxInFlight, 4*r.Workers()) }

// maxInFlight keeps a stream of ApplyAsync calls from being held to a few
// network round trips at a time.
const maxInFlight = 256

// Run sends the chunk to the hosts and delivers its results as they come.
func (r *poolRunner) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	run := &chunkRun{
		task: c.Task, start: c.Start, count: c.Count, deliver: deliver, r: r,
		seen: make([]uint64, (c.Count+63)/64),
		done: make(chan struct{}),
		fail: make(chan error, 1),
	}
	parts, tooBig, err := splitChunk(c, int(r.c.nc.MaxPayload())-payloadReserve)
	if err != nil {
		return err
	}
	if r.c.nc.IsClosed() {
		return fmt.Errorf("cluster: pool %s: %w", r.subj.name, nats.ErrConnectionClosed)
	}
	r.mu.Lock()
	switch {
	case r.terminated:
		r.mu.Unlock()
		return pool.ErrTerminated
	case r.stopped:
		r.mu.Unlock()
		return pool.ErrClosed
	}
	r.active++
	for i := range parts {
		r.next++
		parts[i].id = r.next
		r.runs[r.next] = run
	}
	run.parts = parts
	r.mu.Unlock()
	defer r.endRun(run)

	run.mu.Lock()
	for _, e := range tooBig {
		run.deliverLocked(e)
	}
	run.mu.Unlock()
	for _, p := range parts {
		t := &task{name: c.Task, caller: r.id, chunk: p.id, start: p.start, count: p.count, stop: c.StopOnError, ackWait: r.ackWait}
		m := &nats.Msg{Subject: r.subj.tasks, Header: t.header(), Data: p.args}
		if _, err := r.js.PublishMsgAsync(m); err != nil {
			return fmt.Errorf("cluster: pool %s: cannot queue task %s: %w", r.subj.name, c.Task, err)
		}
	}
	select {
	case <-run.done:
		return nil
	case err := <-run.fail:
		return err
	case <-ctx.Done():
		r.cancel(run)
		return ctx.Err()
	}
}

// payloadReserve is what a chunk message's subject and headers may take
// beside its arguments.
const payloadReserve = 1024

// splitChunk cuts a chunk whose arguments exceed limit bytes into parts of
// consecutive items that fit. An item that alone exceeds the limit is not
// sent: it fails with an error naming the limit.
func splitChunk(c driver.Chunk, limit int) (parts []part, tooBig []driver.Result, err error) {
	if len(c.Args) <= limit {
		return []part{{start: c.Start, count: c.Count, args: c.Args}}, nil, nil
	}
	off, curStart, curOff, curCount := 0, c.Start, 0, 0
	flush := func() {
		if curCount > 0 {
			parts = append(parts, part{start: curStart, count: curCount, args: c.Args[curOff:off:off]})
		}
		curCount = 0
	}
	for i := range c.Count {
		n, err := msgp.Len(c.Args[off:])
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: task %s: bad argument encoding: %w", c.Task, err)
		}
		idx := c.Start + i
		if n > limit {
			flush()
			tooBig = append(tooBig, driver.Result{Index: idx, Err: fmt.Errorf(
				"cluster: task %d: its argument is %d bytes, over the server's payload limit of %d bytes (max_payload)", idx, n, limit+payloadReserve)})
			off += n
			curStart, curOff = idx+1, off
			continue
		}
		if off+n-curOff > limit {
			flush()
			curStart, curOff = idx, off
		}
		curCount++
		off += n
	}
	flush()
	return parts, tooBig, nil
}

// deliverLocked hands one result to the pool, once per index.
func (run *chunkRun) deliverLocked(res driver.Result) {
	i := res.Index - run.start
	if run.closed || i < 0 || i >= run.count {
		return
	}
	if run.seen[i/64]&(1<<(i%64)) != 0 {
		run.r.dups.Add(1)
		return
	}
	run.seen[i/64] |= 1 << (i % 64)
	run.nseen++
	if !run.deliver(res) {
		run.r.dups.Add(1)
	}
	if run.nseen == run.count {
		close(run.done)
	}
}

func (r *poolRunner) endRun(run *chunkRun) {
	run.mu.Lock()
	run.closed = true
	run.mu.Unlock()
	r.mu.Lock()
	for _, p := range run.parts {
		delete(r.runs, p.id)
	}
	r.active--
	last := r.closing && r.active == 0
	r.mu.Unlock()
	if last {
		r.shutdown()
	}
}

// cancel tells the hosts to drop the run's tasks, or cancel them if they
// run.
func (r *poolRunner) cancel(run *chunkRun) {
	ids := make([]uint64, len(run.parts))
	r.mu.Lock()
	for i, p := range run.parts {
		ids[i] = p.id
		r.cancelled[p.id] = true
	}
	r.mu.Unlock()
	r.c.nc.Publish(r.subj.control, appendControl(nil, ctlCancel, r.id, ids...))
}

// onResults receives a host's results (and its pings), and confirms them:
// the host keeps the task until then.
func (r *poolRunner) onResults(m *nats.Msg) {
	defer func() {
		if m.Reply != "" {
			m.Respond(nil)
		}
	}()
	if len(m.Data) == 1 && m.Data[0] == msgPing {
		return
	}
	chunk, rr, err := readResultsHeader(m.Data)
	if err != nil {
		return
	}
	r.mu.Lock()
	run := r.runs[chunk]
	ours := chunk <= r.next && !r.cancelled[chunk]
	r.mu.Unlock()
	if run == nil {
		// A late result for a finished run: a duplicate. (A cancelled
		// run's are not duplicates: they are dropped.)
		if ours {
			for rr.more() {
				if _, err := rr.next(); err != nil {
					break
				}
				r.dups.Add(1)
			}
		}
		return
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	for rr.more() {
		res, err := rr.next()
		if err != nil {
			select {
			case run.fail <- fmt.Errorf("cluster: pool %s: task %s: corrupt results from a host: %w", r.subj.name, run.task, err):
			default:
			}
			return
		}
		run.deliverLocked(res)
	}
}

// onAdvisory learns from the server that a task reached MaxDeliver. The
// task stays in the stream (the server stops delivering it but does not
// remove it), so the caller that owns it fails it with ErrLost and deletes
// it.
func (r *poolRunner) onAdvisory(m *nats.Msg) {
	var a struct {
		Seq        uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Seq == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		sm, err := r.stream.GetMsg(ctx, a.Seq)
		if err != nil {
			return // gone already
		}
		t, err := parseTask(sm.Header)
		if err != nil || t.caller != r.id {
			return
		}
		r.stream.DeleteMsg(ctx, a.Seq)
		r.mu.Lock()
		run := r.runs[t.chunk]
		r.mu.Unlock()
		if run == nil {
			return
		}
		run.mu.Lock()
		defer run.mu.Unlock()
		for i := t.start; i < t.start+t.count; i++ {
			k := i - run.start
			if k < 0 || k >= run.count || run.seen[k/64]&(1<<(k%64)) != 0 {
				continue
			}
			r.lost.Add(1)
			run.deliverLocked(driver.Result{Index: i, Err: fmt.Errorf(
				"cluster: task %d (%s): %w: delivered %d times, and no host returned its result (its hosts died or were cut off, or it killed them)",
				i, t.name, ErrLost, a.Deliveries)})
		}
	}()
}

// onPublishErr fails the run whose chunk the server did not store.
func (r *poolRunner) onPublishErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	t, perr := parseTask(m.Header)
	if perr != nil {
		return
	}
	r.mu.Lock()
	run := r.runs[t.chunk]
	r.mu.Unlock()
	if run == nil {
		return
	}
	select {
	case run.fail <- fmt.Errorf("cluster: pool %s: cannot queue task %s: %w", r.subj.name, t.name, err):
	default:
	}
}

// Close lets the running calls finish; the runner lets go of its
// subscriptions once they have.
func (r *poolRunner) Close() error {
	r.mu.Lock()
	r.closing = true
	last := r.active == 0
	r.mu.Unlock()
	if last {
		r.shutdown()
	}
	return nil
}

// Terminate fails every running call with pool.ErrTerminated and tells the
// hosts to drop this caller's tasks.
func (r *poolRunner) Terminate() error {
	r.mu.Lock()
	r.terminated = true
	r.closing = true
	runs := make([]*chunkRun, 0, len(r.runs))
	for _, run := range r.runs {
		runs = append(runs, run)
	}
	r.mu.Unlock()
	for _, run := range runs {
		select {
		case run.fail <- pool.ErrTerminated:
		default:
		}
	}
	r.shutdown()
	return nil
}

// shutdown tells the hosts this caller is gone and lets go of everything.
// It is idempotent.
func (r *poolRunner) shutdown() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	close(r.stop)
	r.mu.Unlock()
	r.c.nc.Publish(r.subj.control, appendControl(nil, ctlGone, r.id))
	for _, s := range r.subs {
		s.Unsubscribe()
	}
	r.wg.Wait()
	if r.js != nil {
		// Wait a little for the acks of chunks still being published, so
		// that their handlers are done before we return.
		select {
		case <-r.js.PublishAsyncComplete():
		case <-time.After(time.Second):
		}
	}
}

var _ driver.Runner = (*poolRunner)(nil)

//go:build linux

package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/mpgo/multiprocessing/internal/exithook"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream objects behind queue NAME: the work-queue stream
// MPQ_NAME on subject mpq.NAME with its one durable consumer, and the
// stream MPQL_NAME on subject mpql.NAME that records the items dropped
// after MaxDeliver deliveries (so that any process's Join reports them).
const (
	queueStreamPrefix = "MPQ_"
	lostStreamPrefix  = "MPQL_"
	queueSubjectPref  = "mpq."
	lostSubjectPref   = "mpql."
	queueConsumer     = "mpq"
	// maxDeliverKey holds MaxDeliver in the consumer's metadata. The
	// consumer itself has no limit: the server counts deliveries one short
	// once an item has been redelivered (nats-server 2.15, consumer.go
	// hasMaxDeliveries reads the redelivery count as the delivery count), so
	// an item that reached its limit would wait for the next pull request
	// instead of being dropped. The Get that receives an item past the
	// limit drops it instead.
	maxDeliverKey = "mpgo.max_deliver"
)

// maxBatch bounds how many items a plain Queue's Get takes from the server
// at once (see Queue.Get).
const maxBatch = 64

// pullSlice bounds one pull request of a blocking Get: a Get whose ctx is
// cancelled leaves a pull request that lives at most this long.
const pullSlice = time.Second

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func checkQueueName(name string) error {
	if !queueNameRE.MatchString(name) {
		return fmt.Errorf("cluster: queue name %q: want 1 to 64 letters, digits, '-' or '_'", name)
	}
	return nil
}

// wq is the part of a queue that does not depend on the item type.
type wq struct {
	c          *Cluster
	name       string
	subject    string
	stream     jetstream.Stream
	cons       jetstream.Consumer
	maxSize    int
	joinable   bool
	ackWait    time.Duration
	maxDeliver int
	maxPayload int

	mu        sync.Mutex
	closed    bool
	done      chan struct{}            // closed by Close: blocked Gets return ErrClosed
	futures   []jetstream.PubAckFuture // unbounded Put: publishes not yet confirmed, oldest first
	asyncErrs int                      // publishes that failed, not yet reported
	asyncErr  error                    // the first of them

	// getSem serializes the fetches of this handle (a channel, so that a
	// Get waiting for it can give up when its ctx ends).
	getSem    chan struct{}
	abandoned time.Time // when the last pull request given up on expires (under getSem)
	buf       [][]byte  // plain Queue: items taken from the server, not yet returned
	batch     int       // plain Queue: size of the next fetch
	drainT    time.Time
	pull      *puller

	heldMu    sync.Mutex
	held      []*qmsg // Joinable: taken by this handle, not yet done, oldest first
	lostSeen  uint64  // Joinable: last lost-item record this handle reported
	hbStop    chan struct{}
	hbDone    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Queue is a first-in first-out queue kept by the NATS server, shared by
// every process, on every host, that opens it by name. It has the method
// set of queue.Queue and returns its sentinel errors.
//
// Get removes the item from the queue before it returns it: an item is
// returned by at most one Get, in any process. Put on an unbounded queue
// sends the item and returns; the item is stored once Flush or Close
// returns. Put on a bounded queue returns once the item is stored.
type Queue[T any] struct {
	w *wq
}

// Joinable is a Queue whose items stay with the server until the consumer
// that took one marks it done (TaskDone): an item taken by a consumer that
// dies or is cut off is delivered again after AckWait (at least once), and
// Join waits until every item put is done. It has the method set of
// queue.Joinable.
type Joinable[T any] struct {
	Queue[T]
}

// OpenQueue opens the queue name, creating it if no process has: name is 1
// to 64 letters, digits, '-' or '_'. It accepts MaxSize, which is fixed at
// creation: opening an existing queue with another MaxSize is an error.
// The queue lives in the server until DeleteQueue, whatever happens to the
// processes that use it.
func OpenQueue[T any](ctx context.Context, c *Cluster, name string, opts ...Option) (*Queue[T], error) {
	o, err := parseOptions("OpenQueue", opts, "MaxSize")
	if err != nil {
		return nil, err
	}
	w, err := openWQ(ctx, c, name, o, false)
	if err != nil {
		return nil, err
	}
	return &Queue[T]{w: w}, nil
}

// OpenJoinable opens the joinable queue name, creating it if no process
// has. It accepts MaxSize, AckWait and MaxDeliver, which are fixed at
// creation: opening an existing queue with other values is an error. A
// queue is one kind of object: OpenQueue and OpenJoinable of one name open
// the same items.
func OpenJoinable[T any](ctx context.Context, c *Cluster, name string, opts ...Option) (*Joinable[T], error) {
	o, err := parseOptions("OpenJoinable", opts, "MaxSize", "AckWait", "MaxDeliver")
	if err != nil {
		return nil, err
	}
	w, err := openWQ(ctx, c, name, o, true)
	if err != nil {
		return nil, err
	}
	return &Joinable[T]{Queue[T]{w: w}}, nil
}

// DeleteQueue deletes the queue name and the items in it. Handles other
// processes hold fail from then on. Deleting a queue that does not exist
// is not an error.
func DeleteQueue(ctx context.Context, c *Cluster, name string) error {
	if err := checkQueueName(name); err != nil {
		return err
	}
	for _, s := range []string{queueStreamPrefix + name, lostStreamPrefix + name} {
		if err := c.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("cluster: delete queue %s: %w", name, err)
		}
	}
	return nil
}

func openWQ(ctx context.Context, c *Cluster, name string, o *options, joinable bool) (*wq, error) {
	if err := checkQueueName(name); err != nil {
		return nil, err
	}
	sname := queueStreamPrefix + name
	maxMsgs := int64(-1)
	if o.maxSize > 0 {
		maxMsgs = int64(o.maxSize)
	}
	scfg := jetstream.StreamConfig{
		Name:      sname,
		Subjects:  []string{queueSubjectPref + name},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
		MaxMsgs:   maxMsgs,
		Discard:   jetstream.DiscardNew,
	}
	stream, err := c.js.CreateStream(ctx, scfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created by another process with other settings: its MaxSize holds,
		// unless this caller asked for another one explicitly.
		if stream, err = c.js.Stream(ctx, sname); err == nil && o.set["MaxSize"] {
			if have := stream.CachedInfo().Config.MaxMsgs; have != maxMsgs {
				return nil, fmt.Errorf("%w: queue %s exists with MaxSize %d, not %d", ErrInvalidOption, name, max(have, 0), o.maxSize)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open queue %s: %w", name, err)
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       queueConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.ackWait,
		MaxDeliver:    -1,
		Metadata:      map[string]string{maxDeliverKey: strconv.Itoa(o.maxDeliver)},
		MaxAckPending: -1,
		MaxWaiting:    4096,
	}
	cons, err := stream.CreateConsumer(ctx, ccfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		if cons, err = stream.Consumer(ctx, queueConsumer); err == nil {
			have := cons.CachedInfo().Config
			if o.set["AckWait"] && have.AckWait != o.ackWait {
				return nil, fmt.Errorf("%w: queue %s exists with AckWait %v, not %v", ErrInvalidOption, name, have.AckWait, o.ackWait)
			}
			if haveMax := have.Metadata[maxDeliverKey]; o.set["MaxDeliver"] && haveMax != strconv.Itoa(o.maxDeliver) {
				return nil, fmt.Errorf("%w: queue %s exists with MaxDeliver %s, not %d", ErrInvalidOption, name, haveMax, o.maxDeliver)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open queue %s: %w", name, err)
	}
	_, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     lostStreamPrefix + name,
		Subjects: []string{lostSubjectPref + name},
		Storage:  jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("cluster: open queue %s: %w", name, err)
	}
	info := cons.CachedInfo()
	maxDeliver, err := strconv.Atoi(info.Config.Metadata[maxDeliverKey])
	if err != nil || maxDeliver < 1 {
		return nil, fmt.Errorf("cluster: open queue %s: consumer without a valid %s", name, maxDeliverKey)
	}
	w := &wq{
		c:          c,
		name:       name,
		subject:    queueSubjectPref + name,
		stream:     stream,
		cons:       cons,
		maxSize:    int(max(stream.CachedInfo().Config.MaxMsgs, 0)),
		joinable:   joinable,
		ackWait:    info.Config.AckWait,
		maxDeliver: maxDeliver,
		maxPayload: int(c.nc.MaxPayload()),
		getSem:     make(chan struct{}, 1),
		done:       make(chan struct{}),
		batch:      1,
	}
	if w.pull, err = newPuller(c.nc, sname, queueConsumer); err != nil {
		return nil, fmt.Errorf("cluster: open queue %s: %w", name, err)
	}
	if joinable {
		lost, err := c.js.Stream(ctx, lostStreamPrefix+name)
		if err != nil {
			w.pull.close()
			return nil, fmt.Errorf("cluster: open queue %s: %w", name, err)
		}
		w.lostSeen = lost.CachedInfo().State.LastSeq
		w.hbStop = make(chan struct{})
		w.hbDone = make(chan struct{})
		go w.heartbeat()
	}
	// A worker process that returns without closing its queues still gives
	// back the items it took ahead and finishes its publishes. The hook
	// holds the queue weakly: a queue dropped without Close is not kept
	// alive by it.
	if !c.track(w) {
		w.close()
		return nil, fmt.Errorf("cluster: open queue %s: %w", name, nats.ErrConnectionClosed)
	}
	wp := weak.Make(w)
	exithook.Register(func() error {
		if w := wp.Value(); w != nil && !w.isClosed() {
			// Publishes the server never confirmed fail the worker, as a
			// local queue's unwritten items do (a Close already reported
			// its own).
			return w.close()
		}
		return nil
	})
	return w, nil
}

func (w *wq) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// encode encodes v for the queue, refusing what the server would.
func (w *wq) encode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := wire.AppendTo(&b, nil, v); err != nil {
		return nil, fmt.Errorf("cluster: put %s: %w", w.name, err)
	}
	if b.Len() > w.maxPayload {
		return nil, fmt.Errorf("cluster: put %s: %d-byte item over the server's payload limit of %d bytes (max_payload): %w",
			w.name, b.Len(), w.maxPayload, queue.ErrTooLarge)
	}
	return b.Bytes(), nil
}

// isFull reports whether err is the server's refusal of a message to a
// stream at its MaxMsgs.
func isFull(err error) bool {
	a := apiError(err)
	return a != nil && strings.Contains(a.Description, "maximum messages exceeded")
}

// apiError returns the JetStream API error inside err, or nil.
func apiError(err error) *jetstream.APIError {
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) {
		return jsErr.APIError()
	}
	return nil
}

// put publishes data. An unbounded queue pipelines: the publish is
// confirmed later (Flush). A bounded one waits for the server's answer;
// block says whether to retry while the queue is full.
func (w *wq) put(ctx context.Context, data []byte, block bool) error {
	if w.isClosed() {
		return queue.ErrClosed
	}
	if w.maxSize == 0 {
		return w.putAsync(ctx, data)
	}
	backoff := time.Millisecond
	for {
		_, err := w.c.js.Publish(ctx, w.subject, data)
		switch {
		case err == nil:
			return nil
		case !isFull(err):
			if ctx.Err() != nil {
				return fmt.Errorf("cluster: put %s: %w", w.name, ctx.Err())
			}
			return fmt.Errorf("cluster: put %s: %w", w.name, err)
		case !block:
			return queue.ErrFull
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster: put %s: %w", w.name, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

func (w *wq) putAsync(ctx context.Context, data []byte) error {
	if err := w.takeAsyncErr(); err != nil {
		return err
	}
	for {
		f, err := w.c.js.PublishAsync(w.subject, data)
		if err == nil {
			w.mu.Lock()
			w.futures = append(w.futures, f)
			if len(w.futures) >= 1024 {
				w.reapLocked(false)
			}
			w.mu.Unlock()
			return nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return fmt.Errorf("cluster: put %s: %w", w.name, err)
		}
		// Too many publishes unconfirmed: the server is slow; wait for it
		// as long as ctx allows.
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: put %s: %w", w.name, ctx.Err())
		}
	}
}

// reapLocked drops the confirmed publishes from the front of w.futures,
// counting the failed ones; with all it also drops those not yet
// confirmed (Close gave up on them). w.mu is held.
func (w *wq) reapLocked(all bool) {
	i := 0
	for ; i < len(w.futures); i++ {
		f := w.futures[i]
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			w.noteAsyncErr(err)
			continue
		default:
		}
		if !all {
			break
		}
		w.noteAsyncErr(errors.New("not confirmed by the server"))
	}
	w.futures = w.futures[:copy(w.futures, w.futures[i:])]
}

func (w *wq) noteAsyncErr(err error) {
	if w.asyncErrs == 0 {
		w.asyncErr = err
	}
	w.asyncErrs++
}

func (w *wq) takeAsyncErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.asyncErrs == 0 {
		return nil
	}
	err := fmt.Errorf("cluster: queue %s: %d earlier items were not stored: %w", w.name, w.asyncErrs, w.asyncErr)
	w.asyncErrs, w.asyncErr = 0, nil
	return err
}

// flush waits until the server has confirmed every publish of this handle.
func (w *wq) flush(ctx context.Context) error {
	w.mu.Lock()
	fs := append([]jetstream.PubAckFuture(nil), w.futures...)
	w.mu.Unlock()
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			w.mu.Lock()
			w.noteAsyncErr(err)
			w.mu.Unlock()
		case <-ctx.Done():
			return fmt.Errorf("cluster: flush %s: %w", w.name, ctx.Err())
		}
	}
	w.mu.Lock()
	w.futures = w.futures[len(fs):]
	w.mu.Unlock()
	return w.takeAsyncErr()
}

// acquire takes the fetch slot of this handle, or fails when ctx ends.
func (w *wq) acquire(ctx context.Context) error {
	select {
	case w.getSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: get %s: %w", w.name, ctx.Err())
	case <-w.done:
		return queue.ErrClosed
	}
}

func (w *wq) release() { <-w.getSem }

// releaseAfterPull releases the fetch slot, at once or, when the last pull
// request was given up on before the server ended it, once that request
// has expired: until then a goroutine holds the slot and gives back at
// once whatever the request brings. Left in the subscription with no Get
// to take it, such an item would be redelivered to another consumer after
// AckWait while a later Get here could still return it: twice.
func (w *wq) releaseAfterPull() {
	until := w.abandoned
	w.abandoned = time.Time{}
	if time.Until(until) <= 0 {
		w.release()
		return
	}
	go func() {
		defer w.release()
		for d := time.Until(until); d > 0; d = time.Until(until) {
			m, err := w.pull.sub.NextMsg(d)
			if err != nil {
				return
			}
			if isData(m) {
				_ = (&qmsg{w.c.nc, m}).Nak()
			}
		}
	}()
}

// get takes the next item. block says whether to wait for one (until ctx
// ends) or to return queue.ErrEmpty.
//
// A plain Queue acknowledges what it takes before it returns it, and the
// server confirms the acknowledgement: no other Get can return that item.
// To make that cheap it takes up to maxBatch items in one fetch when items
// are waiting and this handle's Gets come in quick succession, and
// acknowledges them with one confirmation; the ones not yet returned stay
// in this process and go back to the queue at Close.
//
// A Joinable takes one item at a time and leaves it unacknowledged until
// TaskDone.
func (w *wq) get(ctx context.Context, block bool) ([]byte, error) {
	if w.isClosed() {
		return nil, queue.ErrClosed
	}
	if err := w.acquire(ctx); err != nil {
		return nil, err
	}
	defer w.releaseAfterPull()
	if len(w.buf) > 0 {
		return w.pop(), nil
	}
	for {
		n := 1
		if !w.joinable && w.maxSize == 0 {
			n = w.nextBatch()
		}
		msgs, err := w.fetchNoWait(ctx, n)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			if !block {
				return nil, queue.ErrEmpty
			}
			m, err := w.fetchWait(ctx)
			if err != nil {
				return nil, err
			}
			if m == nil {
				continue
			}
			msgs = []*qmsg{m}
		}
		if err := w.take(ctx, msgs); err != nil {
			return nil, err
		}
		if len(w.buf) > 0 {
			return w.pop(), nil
		}
	}
}

// nextBatch returns the size of the next fetch: doubled while Gets empty
// the previous fetch's items within a few milliseconds, back to 1 for a
// consumer that spends longer on an item (it would hold items that others
// could take).
func (w *wq) nextBatch() int {
	if time.Since(w.drainT) < 5*time.Millisecond {
		w.batch = min(2*w.batch, maxBatch)
	} else {
		w.batch = 1
	}
	return w.batch
}

func (w *wq) pop() []byte {
	b := w.buf[0]
	w.buf[0] = nil
	w.buf = w.buf[1:]
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return b
}

// take makes the fetched msgs this handle's: a plain Queue acknowledges
// them (the last one with a confirmation, which covers the earlier ones:
// the server handles a consumer's acknowledgements in order) and buffers
// their data; a Joinable holds them for TaskDone.
func (w *wq) take(ctx context.Context, msgs []*qmsg) error {
	if w.joinable {
		for _, m := range msgs {
			if w.dropIfLost(ctx, m) {
				continue
			}
			w.heldMu.Lock()
			w.held = append(w.held, m)
			w.heldMu.Unlock()
			w.buf = append(w.buf, m.Data())
		}
		return nil
	}
	for i, m := range msgs {
		var err error
		if i == len(msgs)-1 {
			err = m.DoubleAck(ctx)
		} else {
			err = m.Ack()
		}
		if err != nil {
			// Unacknowledged items come back to the queue after AckWait;
			// the ones acknowledged so far are this process's.
			for _, m := range msgs[i:] {
				_ = m.Nak()
			}
			if i > 0 {
				for _, m := range msgs[:i] {
					w.buf = append(w.buf, m.Data())
				}
				return nil
			}
			return fmt.Errorf("cluster: get %s: %w", w.name, err)
		}
	}
	for _, m := range msgs {
		w.buf = append(w.buf, m.Data())
	}
	w.drainT = time.Now()
	return nil
}

// dropIfLost drops m if it was delivered more than MaxDeliver times,
// recording it for Join first, and reports whether it did.
func (w *wq) dropIfLost(ctx context.Context, m *qmsg) bool {
	delivered, sseq, err := m.meta()
	if err != nil || delivered <= uint64(w.maxDeliver) {
		return false
	}
	rec, _ := json.Marshal(lostRecord{StreamSeq: sseq, Deliveries: delivered - 1})
	if _, err := w.c.js.Publish(ctx, lostSubjectPref+w.name, rec); err != nil {
		// Not recorded: leave it for the next Get to try again.
		_ = m.Nak()
		return true
	}
	// Term removes it from a work-queue stream. The record, written
	// first, may then name an item twice if this process dies here: Join
	// counts stream sequences, not records.
	_ = m.Term()
	return true
}

// fetchNoWait takes up to n items that are waiting now (and any that
// earlier pull requests brought late).
func (w *wq) fetchNoWait(ctx context.Context, n int) ([]*qmsg, error) {
	if msgs := w.pull.drain(); len(msgs) > 0 {
		return msgs, nil
	}
	reply, err := w.pull.request(n, 0)
	if err != nil {
		return nil, fmt.Errorf("cluster: get %s: %w", w.name, err)
	}
	// The server answers a request for what is waiting at once; the bound
	// is for a server that went away.
	ctx, cancel := context.WithTimeout(ctx, defaultConnectTimeout)
	defer cancel()
	msgs, err := w.pull.collect(ctx, reply, n, nil)
	if len(msgs) > 0 {
		return msgs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: get %s: %w", w.name, err)
	}
	return nil, nil
}

// fetchWait waits for one item for at most pullSlice (nil: none came) or
// until ctx ends or the handle closes. A request that ctx cut short lives
// on for the rest of its slice: what it brings waits for the next Get.
func (w *wq) fetchWait(ctx context.Context) (*qmsg, error) {
	wait := pullSlice
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait < time.Millisecond {
		return nil, fmt.Errorf("cluster: get %s: %w", w.name, context.DeadlineExceeded)
	}
	sent := time.Now()
	reply, err := w.pull.request(1, wait)
	if err != nil {
		return nil, fmt.Errorf("cluster: get %s: %w", w.name, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.done:
			cancel()
		case <-cctx.Done():
		}
	}()
	msgs, err := w.pull.collect(cctx, reply, 1, nil)
	if len(msgs) > 0 {
		return msgs[0], nil
	}
	if err != nil {
		// Given up on: the request may still bring an item until it
		// expires on the server.
		w.abandoned = sent.Add(wait)
	}
	if w.isClosed() {
		return nil, queue.ErrClosed
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cluster: get %s: %w", w.name, ctx.Err())
		}
		return nil, fmt.Errorf("cluster: get %s: %w", w.name, err)
	}
	if time.Since(sent) < 10*time.Millisecond {
		// Refused at once (409: too many waiting requests): do not spin.
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return nil, nil
}

// taskDone acknowledges the oldest item this handle took and has not
// marked done, and waits for the server's confirmation.
func (w *wq) taskDone(ctx context.Context) error {
	w.heldMu.Lock()
	if len(w.held) == 0 {
		w.heldMu.Unlock()
		return queue.ErrTaskDone
	}
	m := w.held[0]
	w.held = w.held[1:]
	w.heldMu.Unlock()
	if err := m.DoubleAck(ctx); err != nil {
		return fmt.Errorf("cluster: task done %s: %w", w.name, err)
	}
	return nil
}

// heartbeat tells the server every AckWait/3 that the items this handle
// holds are still being worked on, so that only a consumer that died or
// was cut off loses its items to redelivery.
func (w *wq) heartbeat() {
	defer close(w.hbDone)
	t := time.NewTicker(w.ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-w.hbStop:
			return
		case <-t.C:
		}
		w.heldMu.Lock()
		held := append([]*qmsg(nil), w.held...)
		w.heldMu.Unlock()
		for _, m := range held {
			_ = m.InProgress()
		}
	}
}

// lostRecord records an item dropped after MaxDeliver deliveries.
type lostRecord struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// join waits until the queue's stream holds no item: every item put was
// acknowledged (done) or dropped after MaxDeliver deliveries. The dropped
// ones are found in the lost stream.
func (w *wq) join(ctx context.Context) error {
	if w.isClosed() {
		return queue.ErrClosed
	}
	lost, err := w.c.js.Stream(ctx, lostStreamPrefix+w.name)
	if err != nil {
		return fmt.Errorf("cluster: join %s: %w", w.name, err)
	}
	w.heldMu.Lock()
	from := w.lostSeen
	w.heldMu.Unlock()
	lostSeqs := map[uint64]bool{}
	backoff := time.Millisecond
	for {
		li, err := lost.Info(ctx)
		if err != nil {
			return fmt.Errorf("cluster: join %s: %w", w.name, err)
		}
		for seq := max(from+1, li.State.FirstSeq); seq <= li.State.LastSeq; seq++ {
			rm, err := lost.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("cluster: join %s: %w", w.name, err)
			}
			var rec lostRecord
			if json.Unmarshal(rm.Data, &rec) == nil && rec.StreamSeq > 0 && !lostSeqs[rec.StreamSeq] {
				lostSeqs[rec.StreamSeq] = true
				// Normally gone already (Term); not if the dropping process
				// died between the record and the Term.
				err := w.stream.DeleteMsg(ctx, rec.StreamSeq)
				if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNoMsg(err) {
					return fmt.Errorf("cluster: join %s: dropping a lost item: %w", w.name, err)
				}
			}
			from = seq
		}
		si, err := w.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("cluster: join %s: %w", w.name, err)
		}
		if si.State.Msgs == 0 {
			w.heldMu.Lock()
			w.lostSeen = max(w.lostSeen, from)
			w.heldMu.Unlock()
			if n := len(lostSeqs); n > 0 {
				return fmt.Errorf("cluster: join %s: %d items reached MaxDeliver deliveries without TaskDone and were dropped: %w", w.name, n, ErrLost)
			}
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster: join %s: %w", w.name, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// isNoMsg reports whether err says the message to delete is gone already.
func isNoMsg(err error) bool {
	// DeleteMsg formats the server's answer into its error, it does not
	// wrap it.
	return errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), "no message found")
}

// consumerInfo returns the queue consumer's state, bounded in time because
// Len has no ctx.
func (w *wq) consumerInfo() (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	return w.cons.Info(ctx)
}

// length counts the stream's messages, which the server updates as it
// stores them (a consumer's NumPending is brought up to date later: right
// after a Flush of 100 items it read 51 now and then). Items a plain
// Queue's handle took ahead of Get are still in the queue; a Joinable's
// items taken and not yet done are not, as locally.
func (w *wq) length() int {
	if w.isClosed() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	si, err := w.stream.Info(ctx)
	if err != nil {
		return 0
	}
	n := int(si.State.Msgs)
	if w.joinable {
		if ci, err := w.consumerInfo(); err == nil {
			n -= ci.NumAckPending
		}
	}
	return max(n, 0)
}

func (w *wq) full() bool {
	if w.maxSize == 0 || w.isClosed() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	defer cancel()
	si, err := w.stream.Info(ctx)
	return err == nil && si.State.Msgs >= uint64(w.maxSize)
}

// close flushes this handle's publishes, gives back the items it took
// ahead and holds (a Joinable's items not done go back at once, not after
// AckWait) and stops its goroutines.
func (w *wq) close() error {
	w.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*defaultConnectTimeout)
		defer cancel()
		err := w.flush(ctx)
		w.mu.Lock()
		w.closed = true
		close(w.done)
		w.reapLocked(true)
		w.mu.Unlock()
		if w.hbStop != nil {
			close(w.hbStop)
			<-w.hbDone
		}
		w.heldMu.Lock()
		held := w.held
		w.held = nil
		w.heldMu.Unlock()
		for _, m := range held {
			_ = m.Nak()
		}
		// A blocked Get holds the slot until its ctx ends; the buffer is
		// only ours once we have the slot.
		w.getSem <- struct{}{}
		if !w.joinable {
			for _, b := range w.buf {
				if _, perr := w.c.js.Publish(ctx, w.subject, b); perr != nil && err == nil {
					err = fmt.Errorf("cluster: close %s: giving back an item taken ahead: %w", w.name, perr)
				}
			}
		}
		w.buf = nil
		w.pull.close()
		w.c.untrack(w)
		w.closeErr = err
	})
	return w.closeErr
}

// Close is close, for the Cluster's list of open handles.
func (w *wq) Close() error { return w.close() }

//go:build linux

package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpgo/multiprocessing/internal/shm"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"golang.org/x/sys/unix"
)

// worker is the parent's view of one worker process: its connection, its
// shared segment, and exactly which items it holds (inflight), so that its
// death fails those and nothing else.
type worker struct {
	p    *Pool
	slot int
	proc *process.Process
	pid  int
	conn *pipe.Conn
	seg  *shm.Segment

	wake        chan struct{} // the writer's doorbell
	readerDone  chan struct{}
	readyOrGone chan struct{}
	readyOnce   sync.Once

	// Under p.mu.
	ready    bool
	gone     bool
	closed   bool // the writer closed the connection: the worker is retiring
	inflight []*span
	pending  int // items in inflight not yet resolved
	budget   int // items it may still be sent (MaxTasksPerChild); -1: no limit
	ctl      []stopMsg
	lastMark time.Time
	startErr error
	protoErr error // why the pool killed it, if it broke the protocol
	killed   bool  // it died of another's signal before it was ready
	timedOut bool
	wdState  int64
	wdSince  time.Time
}

// span is a range of one job's items sent to a worker, in the order the
// worker runs them; done of them have come back.
type span struct {
	job   *job
	start int
	count int
	done  int
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) holds(j *job) bool {
	for _, sp := range w.inflight {
		if sp.job == j && sp.done < sp.count {
			return true
		}
	}
	return false
}

func (w *worker) markReadyOrGone() { w.readyOnce.Do(func() { close(w.readyOrGone) }) }

var workerCount atomic.Int64

// startLocked starts a worker for slot in the background.
func (p *Pool) startLocked(slot int) {
	w := &worker{
		p:           p,
		slot:        slot,
		wake:        make(chan struct{}, 1),
		readerDone:  make(chan struct{}),
		readyOrGone: make(chan struct{}),
		budget:      -1,
	}
	if p.o.maxTasks > 0 {
		w.budget = p.o.maxTasks
	}
	p.slots[slot] = w
	p.live++
	p.wg.Add(1)
	go p.launch(w)
}

func (p *Pool) launch(w *worker) {
	defer p.wg.Done()
	proc, conn, seg, err := spawn(&p.o)
	if err != nil {
		var after []func()
		p.mu.Lock()
		p.lastErr = err
		w.gone = true
		p.workerEndedLocked(w, &after)
		p.mu.Unlock()
		w.markReadyOrGone()
		for _, f := range after {
			f()
		}
		return
	}
	p.mu.Lock()
	w.proc, w.pid, w.conn, w.seg = proc, proc.Pid(), conn, seg
	if p.state == stateTerminated {
		proc.Kill()
	}
	p.mu.Unlock()
	p.wg.Add(2)
	go p.readLoop(w)
	go p.writeLoop(w)
}

// spawn creates a worker's connection and segment and starts it.
func spawn(o *options) (*process.Process, *pipe.Conn, *shm.Segment, error) {
	seg, err := shm.New("pool", segSize)
	if err != nil {
		return nil, nil, nil, err
	}
	fd, err := unix.FcntlInt(uintptr(seg.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		seg.Close()
		return nil, nil, nil, fmt.Errorf("pool: dup: %w", err)
	}
	segFile := os.NewFile(uintptr(fd), "pool-segment")
	defer segFile.Close()
	mine, theirs, err := pipe.Pipe()
	if err != nil {
		seg.Close()
		return nil, nil, nil, err
	}
	defer theirs.Close()
	arg := workerArg{Conn: theirs, Seg: segFile, MemLimit: o.memLimit, CPUTime: o.cpuTime}
	if o.init != nil {
		arg.Init, arg.InitArg, arg.InitFiles = o.init.name, o.init.arg, o.init.files
	}
	proc := process.New(workerFunc, arg,
		process.WithName(fmt.Sprintf("PoolWorker-%d", workerCount.Add(1))))
	if err := proc.Start(); err != nil {
		mine.Close()
		seg.Close()
		return nil, nil, nil, err
	}
	return proc, mine, seg, nil
}

// readLoop receives the worker's messages until its connection ends, then
// settles its death.
func (p *Pool) readLoop(w *worker) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.conn.RecvBytesInto(buf)
		var msg []byte
		switch {
		case err == nil:
			msg = buf[:n]
		case errors.Is(err, pipe.ErrBufferTooShort):
			var bt *pipe.BufferTooShortError
			errors.As(err, &bt)
			msg = bt.Message
			if len(msg) > len(buf) && len(msg) <= 4<<20 {
				buf = make([]byte, len(msg))
			}
		}
		if msg == nil {
			break
		}
		if err := p.handle(w, msg); err != nil {
			// A worker that breaks the protocol cannot be trusted with
			// more work: it is killed, and its death handled as any other.
			p.mu.Lock()
			w.protoErr = err
			p.mu.Unlock()
			w.proc.Kill()
			break
		}
	}
	close(w.readerDone)
	p.workerGone(w)
}

func (p *Pool) handle(w *worker, msg []byte) error {
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty message", errProto)
	}
	switch msg[0] {
	case msgResults:
		return p.deliver(w, msg[1:], false)
	case msgHello:
		if len(msg) != 5 || int(binary.BigEndian.Uint32(msg[1:])) != w.pid {
			return fmt.Errorf("%w: bad hello", errProto)
		}
		p.mu.Lock()
		w.ready = true
		p.fails[w.slot], p.kills[w.slot] = 0, 0
		p.mu.Unlock()
		w.markReadyOrGone()
		w.poke()
		return nil
	case msgInitErr:
		p.mu.Lock()
		w.startErr = errors.New(string(msg[1:]))
		p.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: message kind %d", errProto, msg[0])
}

// piece is a part of a run that belongs to one span.
type piece struct {
	sink       sink
	idx0, skip int
	k          int
}

// deliver matches runs of results against the spans the worker holds, in
// order, and hands them to their jobs. When recovering (reading the dead
// worker's segment) runs may repeat results already delivered; those are
// dropped. Otherwise any mismatch is a protocol error.
func (p *Pool) deliver(w *worker, body []byte, recovering bool) error {
	ran := 0
	var tasks []string
	err := parseRuns(body, func(r run) error {
		var pieces []piece
		p.mu.Lock()
		start, count, skip := r.start, r.count, 0
		for count > 0 && len(w.inflight) > 0 {
			sp := w.inflight[0]
			next := sp.start + sp.done
			if sp.job.id != r.job || start > next || (start < next && !recovering) {
				if recovering {
					break // a run of spans already delivered
				}
				p.mu.Unlock()
				return fmt.Errorf("%w: results for job %d item %d, expected job %d item %d",
					errProto, r.job, start, sp.job.id, next)
			}
			if d := next - start; d > 0 { // recovering: already delivered
				d = min(d, count)
				skip, start, count = skip+d, start+d, count-d
				continue
			}
			k := min(count, sp.count-sp.done)
			pieces = append(pieces, piece{sp.job.sink, start, skip, k})
			if !slices.Contains(tasks, sp.job.task) {
				tasks = append(tasks, sp.job.task)
			}
			skip = 0
			sp.done += k
			w.pending -= k
			start += k
			count -= k
			if sp.done == sp.count {
				w.inflight[0] = nil
				w.inflight = w.inflight[1:]
			}
		}
		p.mu.Unlock()
		if count > 0 && !recovering {
			return fmt.Errorf("%w: %d results beyond what the worker holds", errProto, count)
		}
		off := 0
		for i, pc := range pieces {
			n, k, err := pc.sink.deliver(r.payload[off:], pc.idx0, pc.skip, pc.k)
			off += n
			ran += k
			if err != nil {
				// The rest of the run cannot be located any more.
				for _, rest := range pieces[i+1:] {
					rest.sink.failRange(rest.idx0, rest.k, fmt.Errorf("pool: task %d: corrupt result from the worker: %w", rest.idx0, err))
				}
				break
			}
		}
		return nil
	})
	if !recovering {
		p.mu.Lock()
		now := time.Now()
		if ran > 0 {
			// The worker was busy since lastMark: the items it ran took
			// that long. Only the items that succeeded count: a skipped
			// item took no time, and a failed one says nothing of how long
			// the task takes (it failed at once, or a stop cancelled it);
			// counting them made a task of 30 ms look like one of 0.5 ms
			// after a Map whose items failed at once, and the pool queued
			// several per worker, run after the failure Map stopped at
			// before the stop came back. The time of the
			// failed items stays in the sample: an overestimate only
			// queues less.
			sample := float64(now.Sub(w.lastMark)) / float64(ran)
			for _, task := range tasks {
				if est, ok := p.perItem[task]; ok {
					p.perItem[task] = 0.7*est + 0.3*sample
				} else {
					p.perItem[task] = sample
				}
			}
		}
		w.lastMark = now
		p.mu.Unlock()
		w.poke()
	}
	return err
}

// canTakeLocked reports whether w should be sent more of j now: when it is
// idle, or when what it holds, at j's measured time per item, is less than
// prefetch. Until a task has been measured a worker gets one chunk of it
// at a time, so that the first long tasks are spread over the workers.
func (p *Pool) canTakeLocked(w *worker, j *job) bool {
	if !w.ready || w.gone || w.closed || w.budget == 0 {
		return false
	}
	if w.pending == 0 {
		return true
	}
	est := p.perItem[j.task]
	return len(w.inflight) < maxSpans && est > 0 && float64(w.pending)*est < float64(prefetch)
}

// reserveLocked moves queued items to w's inflight list, as many as it
// should hold, a chunk at a time.
func (p *Pool) reserveLocked(w *worker) []*span {
	if p.state == stateTerminated {
		return nil
	}
	var out []*span
	for {
		j := p.headLocked()
		if j == nil || !p.canTakeLocked(w, j) {
			break
		}
		limit := j.chunk
		if w.budget > 0 {
			limit = min(limit, w.budget)
		}
		start, count := j.take(limit)
		if w.pending == 0 {
			w.lastMark = time.Now()
		}
		sp := &span{job: j, start: start, count: count}
		w.inflight = append(w.inflight, sp)
		w.pending += count
		if w.budget > 0 {
			w.budget -= count
		}
		out = append(out, sp)
	}
	if len(out) > 0 && p.state == stateClosed && !p.hasWorkLocked() {
		p.wakeAllLocked() // idle workers can retire now
	}
	return out
}

// retireLocked reports whether w's connection should be closed now: it
// holds nothing and will get nothing more.
func (p *Pool) retireLocked(w *worker) bool {
	if !w.ready || w.closed || w.pending != 0 || len(w.ctl) != 0 {
		return false
	}
	return w.budget == 0 || p.state == stateTerminated ||
		(p.state == stateClosed && !p.hasWorkLocked())
}

// writeLoop sends w its work: stop messages first, then new spans, all in
// one message per round, encoded outside the pool lock.
func (p *Pool) writeLoop(w *worker) {
	defer p.wg.Done()
	var buf []byte
	for {
		select {
		case <-w.wake:
		case <-w.readerDone:
			return
		}
		for {
			p.mu.Lock()
			if w.gone || w.closed {
				p.mu.Unlock()
				break
			}
			ctl := w.ctl
			w.ctl = nil
			spans := p.reserveLocked(w)
			closeNow := len(ctl) == 0 && len(spans) == 0 && p.retireLocked(w)
			if closeNow {
				w.closed = true
			}
			p.mu.Unlock()
			if closeNow {
				// The worker sees end of file and exits; the reader then
				// sees the connection end and settles it.
				w.conn.Close()
				break
			}
			if len(ctl) == 0 && len(spans) == 0 {
				break
			}
			buf = append(buf[:0], msgTasks)
			for _, s := range ctl {
				buf = appendStop(buf, s)
			}
			for _, sp := range spans {
				buf = p.encodeSpan(buf, w, sp)
			}
			if len(buf) > 1 {
				if err := w.conn.SendBytes(buf); err != nil {
					break // the worker is gone; the reader settles it
				}
			}
			if cap(buf) > 4<<20 {
				buf = nil
			}
		}
	}
}

// encodeSpan appends sp's record. Items the job no longer wants (stopJob
// lowered its limit after sp was reserved) are cut without reading their
// arguments. An argument that cannot be encoded fails that item; the items
// before it still go, those after it are queued again. While it reads the
// job's arguments the job's encoders count says so, and the call that owns
// them waits for it to drop to zero before it returns (see release).
func (p *Pool) encodeSpan(buf []byte, w *worker, sp *span) []byte {
	var after []func()
	defer func() {
		for _, f := range after {
			f()
		}
	}()
	p.mu.Lock()
	j := sp.job
	if end := sp.start + sp.count; !w.gone && end > j.limit {
		s := max(sp.start, j.limit)
		after = append(after, func() { j.sink.skip(s, end-s) })
		w.unreserveLocked(sp, s-sp.start)
	}
	start, count := sp.start, sp.count
	if w.gone || count == 0 {
		// A dead worker's settlement queued all of sp again.
		p.mu.Unlock()
		return buf
	}
	j.encoders++
	p.mu.Unlock()

	off := len(buf)
	buf = appendSpanHeader(buf, j.id, start, count, j.task, j.stopOnErr)
	hdrEnd := len(buf)
	buf, bad, err := j.enc(buf, start, start+count)

	p.mu.Lock()
	if j.encoders--; j.encoders == 0 {
		p.encoded.Broadcast()
	}
	good := count
	if err != nil {
		good = bad - start
		if w.gone {
			good = 0
		} else {
			// The worker has not seen sp: keep the encoded prefix.
			w.unreserveLocked(sp, good)
			ferr := fmt.Errorf("pool: %s: cannot encode the argument: %w", taskName(bad, j.single), err)
			after = append(after, func() { j.sink.fail(bad, ferr) })
			if rest := count - good - 1; rest > 0 {
				p.requeueLocked(j, bad+1, rest, &after)
			}
		}
	}
	p.mu.Unlock()
	if good == 0 {
		return buf[:off]
	}
	if good < count {
		binary.BigEndian.PutUint32(buf[off+13:], uint32(good))
	}
	finishSpan(buf, hdrEnd)
	return buf
}

// unreserveLocked shrinks a span the worker has not been sent to its first
// keep items, and forgets it if none are left.
func (w *worker) unreserveLocked(sp *span, keep int) {
	cut := sp.count - keep
	sp.count = keep
	w.pending -= cut
	if w.budget >= 0 {
		w.budget += cut
	}
	if keep == 0 {
		for i, s := range w.inflight {
			if s == sp {
				w.inflight = append(w.inflight[:i], w.inflight[i+1:]...)
				break
			}
		}
	}
}

// release waits until no writer reads j's arguments any more. A call
// returns the arguments to its caller only after it: a writer may have
// reserved a chunk just before the call stopped the job.
func (p *Pool) release(j *job) {
	p.mu.Lock()
	for j.encoders > 0 {
		p.encoded.Wait()
	}
	p.mu.Unlock()
}

// workerGone settles a worker whose connection ended, in four steps: it
// makes sure the process is gone (reap), recovers the results it had not
// sent (recoverSegment), fails the item it was running and gives back the
// items it never started (settleItemsLocked), and records why it ended
// before it was ready, if it did, then frees its slot for a replacement
// (noteStartLocked, workerEndedLocked).
func (p *Pool) workerGone(w *worker) {
	d := p.reap(w)
	p.recoverSegment(w, &d)
	var after []func()
	p.mu.Lock()
	p.settleItemsLocked(w, &d, &after)
	w.gone = true
	p.noteStartLocked(w, &d)
	p.workerEndedLocked(w, &after)
	p.mu.Unlock()
	w.seg.Close()
	w.markReadyOrGone()
	for _, f := range after {
		f()
	}
}

// death is what the parent knows of a worker's end: how the process
// ended, and what its segment said the worker was doing.
type death struct {
	code    int
	sig     syscall.Signal
	exitErr *process.ExitError // nil for exit code 0
	state   int64              // the segment's state word (runningState)
	job     uint64             // the job of the item in state
	cpuFlag bool               // the CPU time limit killed the running item
}

// reap waits for w's process to exit (killing it after exitGrace: its
// connection is gone, so it has nothing left to do) and closes its
// connection.
func (p *Pool) reap(w *worker) death {
	t := time.NewTimer(exitGrace)
	select {
	case <-w.proc.Done():
	case <-t.C:
		w.proc.Kill()
		<-w.proc.Done()
	}
	t.Stop()
	w.conn.Close()
	var d death
	d.code, _ = w.proc.ExitCode()
	if err := w.proc.Join(context.Background()); errors.As(err, &d.exitErr) {
		d.sig = d.exitErr.Signal
	}
	return d
}

// recoverSegment delivers the results w left in its segment but never
// sent (those it did send were delivered already and are dropped), and
// reads the words that say what it was running when it died.
func (p *Pool) recoverSegment(w *worker, d *death) {
	mem := w.seg.Bytes()
	if n := w.seg.Int64(segCommitted).Load(); n > 0 && n <= int64(len(mem)-segData) {
		p.deliver(w, mem[segData:segData+int(n)], true)
	}
	d.state = w.seg.Int64(segState).Load()
	d.job = uint64(w.seg.Int64(segJob).Load())
	d.cpuFlag = w.seg.Int64(segFlags).Load()&flagCPU != 0
}

// settleItemsLocked fails the item w was running (a WorkerDiedError, or
// ErrTimeout if the watchdog killed it) and gives the items after it,
// which never started, back to their jobs. Every item before it in the
// worker's order has been delivered by now (from the connection or the
// segment); should the segment have been scribbled over, items found
// before the running one lost their results: they fail too rather than
// run twice.
func (p *Pool) settleItemsLocked(w *worker, d *death, after *[]func()) {
	running := -1 // position of the running item among the undelivered
	if d.state&1 == 1 {
		runIdx := stateIndex(d.state)
		pos := 0
		for _, sp := range w.inflight {
			if sp.job.id == d.job && runIdx >= sp.start+sp.done && runIdx < sp.start+sp.count {
				running = pos + runIdx - (sp.start + sp.done)
				break
			}
			pos += sp.count - sp.done
		}
	}
	pos := 0
	for _, sp := range w.inflight {
		for sp.done < sp.count && pos <= running {
			j, idx := sp.job, sp.start+sp.done
			err := p.diedError(w, d, j.base+idx, j.single, pos < running)
			*after = append(*after, func() { j.sink.fail(idx, err) })
			sp.done++
			pos++
		}
		if sp.done < sp.count {
			p.requeueLocked(sp.job, sp.start+sp.done, sp.count-sp.done, after)
		}
	}
	w.inflight, w.pending = nil, 0
}

// diedError is the error of item idx that w held when it died: lost if
// it had finished but its result is gone.
func (p *Pool) diedError(w *worker, d *death, idx int, single, lost bool) error {
	if w.timedOut && !lost {
		return fmt.Errorf("%w: %s ran longer than %v; its worker (pid %d) was killed", ErrTimeout, taskName(idx, single), p.o.timeout, w.pid)
	}
	reason := deathReason(d.code, d.sig, &p.o, d.cpuFlag)
	if w.protoErr != nil {
		reason = "the pool killed it: " + w.protoErr.Error()
	}
	if lost {
		reason = "the task had finished, but its result was lost with the worker"
	}
	return &WorkerDiedError{Index: idx, Pid: w.pid, Code: d.code, Signal: d.sig, reason: reason, single: single}
}

// noteStartLocked records why a worker that ended before it was ready
// did, for ErrBroken's message, and whether someone else's signal killed
// it (which does not count against its slot).
func (p *Pool) noteStartLocked(w *worker, d *death) {
	if w.ready {
		return
	}
	switch {
	case w.startErr != nil:
		p.lastErr = w.startErr
	case d.exitErr != nil:
		p.lastErr = fmt.Errorf("worker (pid %d) exited before it was ready: %v", w.pid, d.exitErr)
		w.killed = killedByOthers(d.sig) && w.protoErr == nil
	default:
		p.lastErr = fmt.Errorf("worker (pid %d) exited before it was ready", w.pid)
	}
}

// workerEndedLocked frees w's slot and starts a replacement when there is
// a use for one: at once, or after a delay if w was killed while it
// started.
func (p *Pool) workerEndedLocked(w *worker, after *[]func()) {
	p.live--
	if p.slots[w.slot] == w {
		p.slots[w.slot] = nil
	}
	switch {
	case w.ready:
	case w.killed:
		p.kills[w.slot]++
	default:
		p.fails[w.slot]++
	}
	switch {
	case !p.wantWorkerLocked() || p.inNew:
	case p.fails[w.slot] >= maxStartFails:
		if p.live == 0 && p.broken == nil {
			p.breakLocked(after)
		}
	case !w.ready && w.killed:
		p.startLaterLocked(w.slot, restartDelay(p.kills[w.slot]))
	default:
		p.startLocked(w.slot)
	}
	p.checkGoneLocked()
}

// wantWorkerLocked reports whether an empty slot should get a worker: the
// pool runs, or is closed with work still queued.
func (p *Pool) wantWorkerLocked() bool {
	return p.state == stateRunning || (p.state == stateClosed && p.hasWorkLocked())
}

// killedByOthers reports whether a worker that died of sig before it was
// ready was killed from outside (SIGKILL from a user or the OOM killer,
// SIGTERM, SIGINT, SIGHUP): nothing the next worker will meet too. A
// worker that crashes or exits on its own before it is ready does it
// again, and counts towards maxStartFails.
func killedByOthers(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGHUP:
		return true
	}
	return false
}

// restartDelay is the wait before a slot's next start after kills
// consecutive starts were killed: restartMin, doubling, up to restartMax.
func restartDelay(kills int) time.Duration {
	d := restartMin
	for i := 1; i < kills && d < restartMax; i++ {
		d *= 2
	}
	return min(d, restartMax)
}

// startLaterLocked starts a worker for slot after d. The pending start
// counts as a live worker, so that the pool is not gone before it ran;
// Terminate cancels it.
func (p *Pool) startLaterLocked(slot int, d time.Duration) {
	p.live++
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		p.mu.Lock()
		if p.restart[slot] != t {
			p.mu.Unlock()
			return // cancelled
		}
		p.restart[slot] = nil
		p.live--
		if p.wantWorkerLocked() {
			p.startLocked(slot)
		}
		p.checkGoneLocked()
		p.mu.Unlock()
	})
	p.restart[slot] = t
}

// cancelRestartsLocked drops the pending delayed starts.
func (p *Pool) cancelRestartsLocked() {
	for slot, t := range p.restart {
		if t != nil {
			t.Stop()
			p.restart[slot] = nil
			p.live--
		}
	}
}

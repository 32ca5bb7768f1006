//go:build linux

package pool

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpgo/multiprocessing/internal/runfunc"
	"github.com/mpgo/multiprocessing/internal/shm"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"golang.org/x/sys/unix"
)

// workerArg is what a worker process is started with.
type workerArg struct {
	Conn      *pipe.Conn
	Seg       *os.File // the memfd of the shared segment
	MemLimit  int64
	CPUTime   time.Duration
	Init      string
	InitArg   []byte
	InitFiles []*os.File
}

// workerFunc is the function every pool worker runs. It is registered here,
// at package level, so that it exists in every process of the binary.
var workerFunc = process.Register("mpgo.pool.worker", func(_ context.Context, a workerArg) error {
	// The process ctx (cancelled by SIGINT) is not the tasks' ctx: a
	// Ctrl-C reaches the whole process group, and the parent decides what
	// happens to the pool; if the parent dies, so do we.
	return serveWorker(a)
})

// flushEvery bounds how long a finished result waits in the worker before
// it is sent while other items keep the worker busy. An idle worker sends
// at once.
const flushEvery = time.Millisecond

func serveWorker(a workerArg) error {
	conn := a.Conn
	defer conn.Close()
	for _, f := range a.InitFiles {
		defer f.Close()
	}
	fail := func(err error) error {
		conn.SendBytes(append([]byte{msgInitErr}, err.Error()...))
		return err
	}
	seg, err := mapSegment(a.Seg)
	a.Seg.Close()
	if err != nil {
		return fail(fmt.Errorf("pool: worker segment: %w", err))
	}
	defer seg.Close()
	rt := &workerRT{
		conn:    conn,
		seg:     seg,
		mem:     seg.Bytes(),
		flags:   seg.Int64(segFlags),
		runOff:  -1,
		stops:   map[uint64]int64{},
		own:     map[uint64]int64{},
		qsig:    make(chan struct{}, 1),
		cpuTime: a.CPUTime,
	}
	rt.mem[segData-1] = msgResults
	rt.data = rt.mem[segData:]
	if err := applyLimits(rt, a); err != nil {
		return fail(err)
	}
	if a.Init != "" {
		files, err := receivedFiles(a.InitFiles)
		if err != nil {
			return fail(fmt.Errorf("pool: initializer %s: %w", a.Init, err))
		}
		err = runfunc.Call(context.Background(), a.Init, a.InitArg, files)
		files.Close()
		if err != nil {
			return fail(fmt.Errorf("pool: initializer %s: %w", a.Init, err))
		}
	}
	rt.timer = time.AfterFunc(time.Hour, rt.timerFlush)
	rt.timer.Stop()
	defer rt.timer.Stop()
	hello := binary.BigEndian.AppendUint32([]byte{msgHello}, uint32(os.Getpid()))
	if err := conn.SendBytes(hello); err != nil {
		return err
	}
	go rt.readLoop()
	return rt.runLoop()
}

// mapSegment maps the shared segment the parent created.
func mapSegment(f *os.File) (*shm.Segment, error) {
	if f == nil {
		return nil, fmt.Errorf("no segment")
	}
	fd, err := dupRaw(f)
	if err != nil {
		return nil, err
	}
	var state [8]byte // descriptor index 0, then the size
	binary.BigEndian.PutUint32(state[4:], segSize)
	files := wire.Received([]int{fd})
	defer files.Close()
	seg, _, err := shm.DecodeState(state[:], files)
	return seg, err
}

// receivedFiles turns the initializer's descriptors back into the table its
// argument's handles take them from.
func receivedFiles(fs []*os.File) (*wire.Files, error) {
	fds := make([]int, 0, len(fs))
	for _, f := range fs {
		fd, err := dupRaw(f)
		if err != nil {
			wire.Received(fds).Close()
			return nil, err
		}
		fds = append(fds, fd)
	}
	return wire.Received(fds), nil
}

// dupRaw duplicates f's descriptor without changing its blocking mode (as
// os.File.Fd would).
func dupRaw(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(u uintptr) {
		fd, derr = unix.FcntlInt(u, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return fd, derr
}

// workerRT is the worker side: a reader goroutine queues the spans the
// parent sends, the main goroutine runs them one item at a time and
// appends each result to the run being built in the shared segment, and a
// timer (or the runner, when it goes idle) sends what was built.
type workerRT struct {
	conn *pipe.Conn
	seg  *shm.Segment
	mem  []byte
	data []byte

	flags  *atomic.Int64
	seq    uint64 // items begun
	pubJob uint64 // the job last stored in the segment's job word

	dec     decState
	enc     encState
	scratch []byte

	outMu    sync.Mutex
	used     int // bytes of data in use (== committed)
	runOff   int // offset of the open run's header, -1 when none
	runJob   uint64
	runStart int
	runNext  int
	runCount int
	runBytes int
	armed    bool
	timer    *time.Timer
	sendErr  error

	qmu        sync.Mutex
	queue      []*spanMsg
	qhead      int
	eof        bool
	readErr    error
	qsig       chan struct{}
	stops      map[uint64]int64 // job -> highest index that may still run
	own        map[uint64]int64 // the same, from this worker's own failures
	anyStops   atomic.Bool
	curSpanJob uint64
	curCancel  context.CancelFunc

	cpuTime time.Duration
	cpuSoft atomic.Int64 // the RLIMIT_CPU soft limit set for the running item, in seconds
	cpuHard uint64
}

func (rt *workerRT) readLoop() {
	for {
		msg, err := rt.conn.RecvBytes()
		if err == nil && (len(msg) == 0 || msg[0] != msgTasks) {
			err = fmt.Errorf("%w: message kind %d from the parent", errProto, firstByte(msg))
		}
		if err == nil {
			rt.qmu.Lock()
			err = parseTasks(msg[1:], func(s spanMsg) {
				rt.queue = append(rt.queue, &s)
			}, rt.stopLocked)
			rt.qmu.Unlock()
		}
		if err != nil {
			rt.qmu.Lock()
			rt.eof = true
			if !isEOF(err) {
				rt.readErr = err
			}
			rt.qmu.Unlock()
			rt.signal()
			return
		}
		rt.signal()
	}
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func (rt *workerRT) signal() {
	select {
	case rt.qsig <- struct{}{}:
	default:
	}
}

// stopLocked records a stop: no item of the job above the threshold starts
// here any more, and the running one's ctx is cancelled if it is above.
func (rt *workerRT) stopLocked(s stopMsg) {
	if old, ok := rt.stops[s.job]; !ok || s.threshold < old {
		rt.stops[s.job] = s.threshold
	}
	rt.anyStops.Store(true)
	if st := rt.loadWord(segState); rt.curSpanJob == s.job && rt.curCancel != nil &&
		st&1 == 1 && int64(stateIndex(st)) > s.threshold {
		rt.curCancel()
	}
}

func (rt *workerRT) stopped(job uint64, idx int) bool {
	if !rt.anyStops.Load() {
		return false
	}
	rt.qmu.Lock()
	th, ok := rt.stops[job]
	oth, ook := rt.own[job]
	rt.qmu.Unlock()
	return (ok && int64(idx) > th) || (ook && int64(idx) > oth)
}

// runLoop runs spans until the parent closes the connection. It flushes
// whenever it runs out of work, so an idle worker holds no results.
func (rt *workerRT) runLoop() error {
	for {
		rt.qmu.Lock()
		for rt.qhead == len(rt.queue) && !rt.eof {
			rt.queue = rt.queue[:0]
			rt.qhead = 0
			// The parent sends no span of a stopped job after the stop, so
			// with nothing queued the stops can go. Not the ones this
			// worker took itself (own): the parent may still send a span
			// of the job before it has the failure.
			clear(rt.stops)
			rt.anyStops.Store(len(rt.own) > 0)
			rt.qmu.Unlock()
			if err := rt.flush(); err != nil {
				return err
			}
			<-rt.qsig
			rt.qmu.Lock()
		}
		if rt.qhead == len(rt.queue) {
			err := rt.readErr
			rt.qmu.Unlock()
			if ferr := rt.flush(); err == nil {
				err = ferr
			}
			return err
		}
		sp := rt.queue[rt.qhead]
		rt.queue[rt.qhead] = nil
		rt.qhead++
		rt.qmu.Unlock()
		rt.runSpan(sp)
		rt.outMu.Lock()
		err := rt.sendErr
		rt.outMu.Unlock()
		if err != nil {
			return err // the parent is gone
		}
	}
}

func (rt *workerRT) runSpan(sp *spanMsg) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt.qmu.Lock()
	rt.curSpanJob, rt.curCancel = sp.job, cancel
	rt.qmu.Unlock()
	if e := lookupTask(sp.name); e != nil {
		e.run(ctx, rt, sp)
	} else {
		msg := fmt.Sprintf("pool: no task registered as %q in this binary: call pool.Register at package level so that workers have it too", sp.name)
		for i := 0; i < sp.count; i++ {
			rt.record(sp, sp.start+i, appendErrRecord(rt.scratch[:0], kindInternal, msg, ""))
		}
	}
	rt.qmu.Lock()
	rt.curSpanJob, rt.curCancel = 0, nil
	rt.qmu.Unlock()
	// Between spans: no item runs (the watchdog must not time the wait
	// for work). Within a span the state of the item that ended stays
	// until the next one begins: its result is in the segment by then,
	// so after a death the parent finds it delivered, not running.
	rt.storeWord(segState, rt.loadWord(segState)&^1)
}

// begin publishes the item about to run: the parent reads it if we die,
// and its timeout watchdog sees the state word change.
//
// It is one plain store per item (the job's is one per span): a map of a
// trivial task runs millions of items a second, and a locked instruction
// costs as much as the task.
func (rt *workerRT) begin(job uint64, idx int) {
	if job != rt.pubJob {
		// The job changes only at a span's first item, when the state is
		// even (runSpan clears it after each span): a worker killed
		// between these two stores names no running item, rather than an
		// index of the old job in the new one.
		rt.storeWord(segJob, int64(job))
		rt.pubJob = job
	}
	rt.seq++
	if rt.cpuTime > 0 {
		rt.armCPU()
	}
	rt.storeWord(segState, runningState(rt.seq, idx))
}

// end records the running item's result in the segment. The state word
// still names the item until the next begins: a worker that dies in
// between has the result in the segment, and the parent finds it
// delivered.
func (rt *workerRT) end(sp *spanMsg, idx int, rec []byte) {
	rt.outMu.Lock()
	rt.appendLocked(sp.job, idx, rec)
	stop := rt.failedLocked(sp, rec)
	rt.outMu.Unlock()
	if stop {
		rt.stopOwn(sp.job, idx)
	}
}

// record appends the result of an item that did not run (skipped, or an
// argument that did not decode).
func (rt *workerRT) record(sp *spanMsg, idx int, rec []byte) {
	rt.outMu.Lock()
	rt.appendLocked(sp.job, idx, rec)
	stop := rt.failedLocked(sp, rec)
	rt.outMu.Unlock()
	if stop {
		rt.stopOwn(sp.job, idx)
	}
}

// failedLocked reports whether rec, just appended, is the failure of an
// item of a job that stops at its first error. Such a failure is sent at
// once rather than on the flush timer: the parent stops the job's items at
// the other workers only when it has it, and every flush period it waits
// is a period in which they start items that the call will throw away
// (under load a timer can fire many periods late).
func (rt *workerRT) failedLocked(sp *spanMsg, rec []byte) bool {
	if !sp.stopOnErr || len(rec) == 0 || rec[0] != statusErr {
		return false
	}
	rt.flushLocked()
	return true
}

// stopOwn stops this worker's items of job above idx, which just failed:
// the stop the parent will send once it has the failure, taken without
// waiting for the round trip, so that the items queued here behind the
// failed one are skipped rather than started. It is kept also when the
// worker goes idle, because the parent may have reserved the next item for
// this worker between taking the failed one off its books and stopping the
// job. Keeping one is always right (Map never wants an item above a failed
// one); only the memory is bounded, by forgetting them all now and then.
func (rt *workerRT) stopOwn(job uint64, idx int) {
	rt.qmu.Lock()
	if len(rt.own) >= maxOwnStops {
		clear(rt.own)
	}
	if old, ok := rt.own[job]; !ok || int64(idx) < old {
		rt.own[job] = int64(idx)
	}
	rt.anyStops.Store(true)
	rt.qmu.Unlock()
}

// maxOwnStops bounds the stops a worker keeps from its own failures.
const maxOwnStops = 64

func (rt *workerRT) appendLocked(job uint64, idx int, rec []byte) {
	newRun := rt.runOff < 0 || job != rt.runJob || idx != rt.runNext
	need := len(rec)
	if newRun {
		need += runHeaderLen
	}
	if rt.used+need > len(rt.data) {
		rt.flushLocked()
		newRun, need = true, len(rec)+runHeaderLen
		if need > len(rt.data) {
			// Larger than the whole segment: send it by itself. It
			// cannot be recovered if we die before the send completes.
			msg := make([]byte, 1+runHeaderLen, 1+need)
			msg[0] = msgResults
			putRunHeader(msg[1:], job, idx, 1, len(rec))
			rt.send(append(msg, rec...))
			return
		}
	}
	if newRun {
		rt.runOff, rt.runJob, rt.runStart = rt.used, job, idx
		rt.runCount, rt.runBytes = 0, 0
		rt.used += runHeaderLen
	}
	copy(rt.data[rt.used:], rec)
	rt.used += len(rec)
	rt.runCount++
	rt.runBytes += len(rec)
	rt.runNext = idx + 1
	putRunHeader(rt.data[rt.runOff:], job, rt.runStart, rt.runCount, rt.runBytes)
	rt.setCommitted(rt.used)
	if !rt.armed {
		rt.armed = true
		rt.timer.Reset(flushEvery)
	}
}

// setCommitted publishes how many bytes of runs the segment holds. Only
// the parent reads the word, after this process is dead.
func (rt *workerRT) setCommitted(n int) { rt.storeWord(segCommitted, int64(n)) }

// storeWord and loadWord access a word of the segment's header with plain,
// aligned 8-byte moves, which no reader sees torn. The parent reads the
// words while we run (the timeout watchdog, which only needs to see a
// change) and after we died, when every store this process made is
// visible, in program order: a killed process stops between two
// instructions, and the compiler keeps stores in order, the more so
// across the mutex operations and calls between the ones that matter (a
// result is appended under outMu before the next item's state is
// stored). The one reader in this process, stopLocked, takes the value as
// a hint, as it would an atomic one: the item may change right after.
// Atomic stores here cost a locked instruction per item, as much as a
// trivial task.
func (rt *workerRT) storeWord(off int, v int64) {
	binary.NativeEndian.PutUint64(rt.mem[off:off+8], uint64(v))
}

func (rt *workerRT) loadWord(off int) int64 {
	return int64(binary.NativeEndian.Uint64(rt.mem[off : off+8]))
}

func (rt *workerRT) flush() error {
	rt.outMu.Lock()
	defer rt.outMu.Unlock()
	rt.flushLocked()
	return rt.sendErr
}

func (rt *workerRT) timerFlush() {
	rt.outMu.Lock()
	if rt.armed {
		rt.flushLocked()
	}
	rt.outMu.Unlock()
}

// flushLocked sends the runs built so far, straight from the segment, and
// starts over. The segment is reset only after the send: if we die in
// between, the parent reads the same results twice and drops the copy.
func (rt *workerRT) flushLocked() {
	rt.armed = false
	if rt.used == 0 {
		return
	}
	rt.send(rt.mem[segData-1 : segData+rt.used])
	rt.used, rt.runOff = 0, -1
	rt.setCommitted(0)
}

func (rt *workerRT) send(msg []byte) {
	if rt.sendErr != nil {
		return
	}
	if err := rt.conn.SendBytes(msg); err != nil {
		rt.sendErr = err
	}
}

//go:build linux

package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/nats-io/nats.go"
)

// The wire protocol of a pool across hosts. For a pool NAME and a program
// build BUILD:
//
//	stream MPPOOL_NAME            work-queue stream of the pool's tasks, file storage
//	mp.pool.NAME.t.BUILD          a chunk of a call (JetStream): headers below, payload Chunk.Args
//	consumer mp_BUILD             the one durable pull consumer of that subject, shared by the hosts
//	mp.pool.NAME.r.CALLER         results for one caller (core NATS request: the caller confirms)
//	mp.pool.NAME.c                caller -> hosts: alive, cancel chunks, gone (core NATS)
//	mp.pool.NAME.h                hosts -> callers: announcement every second (JSON)
//	mp.pool.NAME.q                callers -> hosts: announce yourselves now
//
// A subject per build keeps a host of another build from ever pulling this
// build's tasks: it does not even see them.

const (
	hdrTask    = "Mp-Task"
	hdrCaller  = "Mp-Caller"
	hdrChunk   = "Mp-Chunk"
	hdrStart   = "Mp-Start"
	hdrCount   = "Mp-Count"
	hdrStop    = "Mp-Stop"
	hdrAckWait = "Mp-Ack-Wait" // milliseconds: how often the host must say it is working
)

// Timing of the liveness signals.
const (
	callerBeat   = 500 * time.Millisecond // a caller says it is alive
	callerStale  = 3 * callerBeat         // a host checks on a caller silent this long
	hostBeat     = time.Second            // a host announces itself
	hostStale    = 3*hostBeat + hostBeat/2
	confirmWait  = 2 * time.Second // a host waits this long for a caller to confirm results
	probeTimeout = 2 * time.Second
)

var poolNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func checkPoolName(name string) error {
	if !poolNameRE.MatchString(name) {
		return fmt.Errorf("cluster: pool name %q: use 1 to 64 letters, digits, '-' or '_'", name)
	}
	return nil
}

type poolSubjects struct {
	name, build                            string
	stream, consumer, tasks, all           string
	resultPrefix, control, hosts, hostsAsk string
}

func newPoolSubjects(name, build string) poolSubjects {
	p := "mp.pool." + name
	return poolSubjects{
		name: name, build: build,
		stream:       "MPPOOL_" + name,
		consumer:     "mp_" + build,
		tasks:        p + ".t." + build,
		all:          p + ".t.*",
		resultPrefix: p + ".r.",
		control:      p + ".c",
		hosts:        p + ".h",
		hostsAsk:     p + ".q",
	}
}

func (s poolSubjects) result(caller string) string { return s.resultPrefix + caller }

func (s poolSubjects) advisory() string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + s.stream + "." + s.consumer
}

// newID returns a random identifier usable as a subject token.
func newID() string {
	var b [12]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// The build identity of this program. Two processes run each other's tasks
// only when their identities match: tasks resolve by registered name, and
// the same name in another build may be another function.
var (
	buildOnce sync.Once
	buildVal  string
)

// buildID returns a short token identifying this program's build: a hash
// of the Go build ID the linker writes into the executable (it changes with
// any change of the code or the toolchain, and is the same for the same
// build on every machine), or of the executable's contents when it has
// none.
func buildID() string {
	buildOnce.Do(func() {
		if buildVal != "" {
			return // set by a test
		}
		h := sha256.New()
		if id := goBuildID("/proc/self/exe"); id != "" {
			h.Write([]byte(id))
		} else if f, err := os.Open("/proc/self/exe"); err == nil {
			io.Copy(h, f)
			f.Close()
		} else {
			// No way to tell builds apart: every such process is one build.
			h.Write([]byte("unknown"))
		}
		buildVal = hex.EncodeToString(h.Sum(nil)[:8])
	})
	return buildVal
}

// goBuildID reads the Go build ID note of an ELF executable ("" if none).
func goBuildID(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		return ""
	}
	// An ELF note: namesz, descsz, type, then the name "Go\0\0" and the ID.
	namesz := binary.LittleEndian.Uint32(b[0:])
	descsz := binary.LittleEndian.Uint32(b[4:])
	off := 12 + int((namesz+3)&^3)
	if off+int(descsz) > len(b) {
		return ""
	}
	return string(b[off : off+int(descsz)])
}

// task is the header of one chunk message, as a host reads it.
type task struct {
	name    string
	caller  string
	chunk   uint64
	start   int
	count   int
	stop    bool
	ackWait time.Duration
}

func (t *task) header() nats.Header {
	h := nats.Header{}
	h.Set(hdrTask, t.name)
	h.Set(hdrCaller, t.caller)
	h.Set(hdrChunk, strconv.FormatUint(t.chunk, 10))
	h.Set(hdrStart, strconv.Itoa(t.start))
	h.Set(hdrCount, strconv.Itoa(t.count))
	if t.stop {
		h.Set(hdrStop, "1")
	}
	h.Set(hdrAckWait, strconv.FormatInt(t.ackWait.Milliseconds(), 10))
	return h
}

var idRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

// parseTask reads a chunk's header, checking everything a peer could get
// wrong.
func parseTask(h nats.Header) (*task, error) {
	t := &task{name: h.Get(hdrTask), caller: h.Get(hdrCaller), stop: h.Get(hdrStop) == "1"}
	if t.name == "" {
		return nil, errors.New("no task name")
	}
	if !idRE.MatchString(t.caller) {
		return nil, fmt.Errorf("bad caller id %q", t.caller)
	}
	var err error
	if t.chunk, err = strconv.ParseUint(h.Get(hdrChunk), 10, 64); err != nil {
		return nil, fmt.Errorf("bad chunk id: %w", err)
	}
	if t.start, err = strconv.Atoi(h.Get(hdrStart)); err != nil || t.start < 0 {
		return nil, fmt.Errorf("bad start %q", h.Get(hdrStart))
	}
	if t.count, err = strconv.Atoi(h.Get(hdrCount)); err != nil || t.count < 1 || t.count > 1<<30 {
		return nil, fmt.Errorf("bad count %q", h.Get(hdrCount))
	}
	ms, err := strconv.ParseInt(h.Get(hdrAckWait), 10, 64)
	if err != nil || ms < 1 || ms > int64(24*time.Hour/time.Millisecond) {
		return nil, fmt.Errorf("bad ack wait %q", h.Get(hdrAckWait))
	}
	t.ackWait = time.Duration(ms) * time.Millisecond
	return t, nil
}

// Result messages (host -> caller), payload:
//
//	'R', chunk id (msgpack uint), then records: index (int), status (int), and
//	  statusOK:      the value (msgpack, as the task encoded it)
//	  statusTask:    message (str), stack (str), ctx kind (int: 0, 1 canceled, 2 deadline)
//	  statusDied:    pid, code, signal (ints)
//	  statusSkipped: nothing
//	  statusOther:   text (str), sentinel (int, see sentinels)
//
// A ping (host -> caller, is it alive?) is the single byte 'P'.
const (
	statusOK = iota
	statusTask
	statusDied
	statusSkipped
	statusOther
)

const (
	msgResults = 'R'
	msgPing    = 'P'
)

// sentinels are the errors a result's error may match, by their code.
var sentinels = []error{nil, pool.ErrTimeout, pool.ErrTerminated, pool.ErrBroken, pool.ErrClosed,
	context.Canceled, context.DeadlineExceeded, ErrLost}

func appendResultsHeader(b []byte, chunk uint64) []byte {
	b = append(b, msgResults)
	return msgp.AppendUint(b, chunk)
}

// appendResult appends one record. A value is copied: the caller of deliver
// owns it only during the call.
func appendResult(b []byte, r driver.Result) []byte {
	b = msgp.AppendInt(b, int64(r.Index))
	var te *pool.TaskError
	var wd *pool.WorkerDiedError
	switch {
	case r.Err == nil:
		b = msgp.AppendInt(b, statusOK)
		return append(b, r.Value...)
	case errors.As(r.Err, &te):
		b = msgp.AppendInt(b, statusTask)
		b = msgp.AppendString(b, te.Message)
		b = msgp.AppendString(b, te.Stack)
		kind := 0
		switch {
		case errors.Is(r.Err, context.Canceled):
			kind = 1
		case errors.Is(r.Err, context.DeadlineExceeded):
			kind = 2
		}
		return msgp.AppendInt(b, int64(kind))
	case errors.As(r.Err, &wd):
		b = msgp.AppendInt(b, statusDied)
		b = msgp.AppendInt(b, int64(wd.Pid))
		b = msgp.AppendInt(b, int64(wd.Code))
		return msgp.AppendInt(b, int64(wd.Signal))
	case errors.Is(r.Err, driver.ErrSkipped):
		return msgp.AppendInt(b, statusSkipped)
	}
	b = msgp.AppendInt(b, statusOther)
	b = msgp.AppendString(b, r.Err.Error())
	code := 0
	for i, s := range sentinels[1:] {
		if errors.Is(r.Err, s) {
			code = i + 1
			break
		}
	}
	return msgp.AppendInt(b, int64(code))
}

// remoteError is an error that crossed from a host: its text, and the
// errors it matches.
type remoteError struct {
	text string
	errs []error
}

func (e *remoteError) Error() string   { return e.text }
func (e *remoteError) Unwrap() []error { return e.errs }

// resultReader decodes a results message, which comes from the network:
// every length and value is checked, and a bad message is an error, never
// a panic.
type resultReader struct {
	b []byte
	p int
}

func readResultsHeader(b []byte) (chunk uint64, rr resultReader, err error) {
	if len(b) == 0 || b[0] != msgResults {
		return 0, rr, errors.New("cluster: not a results message")
	}
	c, n, err := msgp.ReadUint(b[1:])
	if err != nil {
		return 0, rr, fmt.Errorf("cluster: results message: chunk id: %w", err)
	}
	return c, resultReader{b: b, p: 1 + n}, nil
}

func (r *resultReader) more() bool { return r.p < len(r.b) }

func (r *resultReader) int() (int64, error) {
	v, n, err := msgp.ReadInt(r.b[r.p:])
	r.p += n
	return v, err
}

func (r *resultReader) str() (string, error) {
	v, n, err := msgp.ReadBytes(r.b[r.p:])
	r.p += n
	return string(v), err
}

// next decodes one record. Value aliases the message.
func (r *resultReader) next() (driver.Result, error) {
	var res driver.Result
	idx, err := r.int()
	if err != nil {
		return res, fmt.Errorf("cluster: results message: index: %w", err)
	}
	if idx < 0 || idx > 1<<40 {
		return res, fmt.Errorf("cluster: results message: index %d out of range", idx)
	}
	res.Index = int(idx)
	st, err := r.int()
	if err != nil {
		return res, fmt.Errorf("cluster: results message: status: %w", err)
	}
	ints := func(k int) ([]int64, error) {
		v := make([]int64, k)
		for i := range v {
			if v[i], err = r.int(); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	switch st {
	case statusOK:
		n, err := msgp.Len(r.b[r.p:])
		if err != nil {
			return res, fmt.Errorf("cluster: results message: value of task %d: %w", idx, err)
		}
		res.Value = r.b[r.p : r.p+n]
		r.p += n
	case statusTask:
		msg, err := r.str()
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		stack, err := r.str()
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		kind, err := r.int()
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		te := &pool.TaskError{Index: res.Index, Message: msg, Stack: stack}
		res.Err = te
		switch kind {
		case 1:
			res.Err = &remoteError{te.Error(), []error{te, context.Canceled}}
		case 2:
			res.Err = &remoteError{te.Error(), []error{te, context.DeadlineExceeded}}
		}
	case statusDied:
		v, err := ints(3)
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		res.Err = &pool.WorkerDiedError{Index: res.Index, Pid: int(v[0]), Code: int(v[1]), Signal: syscall.Signal(v[2])}
	case statusSkipped:
		res.Err = driver.ErrSkipped
	case statusOther:
		text, err := r.str()
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		code, err := r.int()
		if err != nil {
			return res, fmt.Errorf("cluster: results message: %w", err)
		}
		e := &remoteError{text: text}
		if code > 0 && code < int64(len(sentinels)) {
			e.errs = []error{sentinels[code]}
		}
		res.Err = e
	default:
		return res, fmt.Errorf("cluster: results message: unknown status %d", st)
	}
	return res, nil
}

// Control messages (caller -> hosts): a kind byte, the caller's id, and for
// a cancel the chunk ids (msgpack uints).
const (
	ctlAlive  = 'A'
	ctlCancel = 'C'
	ctlGone   = 'G' // the caller terminated or closed: drop its chunks
)

func appendControl(b []byte, kind byte, caller string, chunks ...uint64) []byte {
	b = append(b, kind)
	b = append(b, caller...)
	for _, c := range chunks {
		b = msgp.AppendUint(b, c)
	}
	return b
}

func parseControl(b []byte) (kind byte, caller string, chunks []uint64, err error) {
	if len(b) < 1+24 {
		return 0, "", nil, errors.New("cluster: short control message")
	}
	kind, caller = b[0], string(b[1:25])
	if !idRE.MatchString(caller) {
		return 0, "", nil, errors.New("cluster: control message: bad caller id")
	}
	for p := 25; p < len(b); {
		c, n, err := msgp.ReadUint(b[p:])
		if err != nil {
			return 0, "", nil, fmt.Errorf("cluster: control message: %w", err)
		}
		chunks = append(chunks, c)
		p += n
	}
	return kind, caller, chunks, nil
}

// hostInfo is a host's announcement (JSON on mp.pool.NAME.h).
type hostInfo struct {
	ID       string `json:"id"`
	Build    string `json:"build"`
	Workers  int    `json:"workers"`
	Hostname string `json:"hostname"`
	Pid      int    `json:"pid"`
	Bye      bool   `json:"bye,omitempty"` // the host stops serving
}

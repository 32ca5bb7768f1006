//go:build linux

// Package wire is the one msgpack codec of the module: values cross process
// boundaries through it, and objects that own OS resources (handles) travel
// with their file descriptors beside the encoded bytes.
//
// A handle type registers itself once with [RegisterHandle]. Encoding a value
// with [Marshal] then collects the descriptors of every handle it meets (at
// top level, in struct fields, slices, maps and interface-typed fields) into a
// [Files] table; the caller moves that table to the other process (as
// inherited descriptors at exec, or SCM_RIGHTS) and [Unmarshal] rebuilds the
// handles from it there.
//
// Decoding follows rules of its own, set for every msgpack decoder in the
// process (see decode.go): integers that do not fit their Go type are a
// [*DecodeError], integers and floats decoded into interfaces are int64
// and float64. [Unmarshal] also runs [Validate] (well-formed, bounded
// claims and depth) and [Check] (struct keys, the decode budget) on the
// bytes first; decoders outside this package use [Validate], [Check] and
// [Decode] for the same.
//
// Slices of Go numbers ([]float64, []int32, ...; a []byte is msgpack's
// bin) are encoded and decoded by a loop over the slice rather than by
// msgpack's reflection per element (see numslice.go), for every msgpack
// encoder and decoder in the process; the bytes are msgpack's.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"syscall"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// Extension type numbers, one per handle type, allocated here so that no two
// packages pick the same one. msgpack reserves negative numbers; users who
// register their own extensions are expected to stay below 100.
const (
	ExtFile int8 = 100 + iota
	ExtTCPConn
	ExtUnixConn
	ExtTCPListener
	ExtUnixListener
	ExtPipeConn
	ExtLock // lock package: 106..112
	ExtRLock
	ExtSemaphore
	ExtBoundedSemaphore
	ExtEvent
	ExtCondition
	ExtBarrier
	ExtQueue // queue package: 113..115
	ExtJoinable
	ExtSimple
	ExtProxy // manager package: 116..

	// sharedmem package: 117..119 (iota runs on over the blank line).
	ExtMemory
	ExtArray
	ExtValue
)

// ErrNoFiles is returned when a handle is encoded or decoded by a codec that
// has no descriptor table, for example plain msgpack.Marshal.
var ErrNoFiles = errors.New("wire: handles (pipes, queues, locks, files, sockets) can only travel as a process argument or over a unix socket")

// Files is the table of descriptors that travels beside an encoded value.
//
// On the sending side it lists descriptors borrowed from live objects (not
// closed here) and temporary duplicates (closed by Close). On the receiving
// side it owns every descriptor until a handle takes it; Close then closes
// the ones nobody took.
type Files struct {
	fds   []int
	owned []bool // sender: a temporary to close; receiver: not yet taken
}

// Add appends a descriptor borrowed from a live object and returns its index.
func (f *Files) Add(fd int) int {
	f.fds = append(f.fds, fd)
	f.owned = append(f.owned, false)
	return len(f.fds) - 1
}

// AddOwned appends a descriptor that the table closes in Close (a duplicate
// made only to be sent) and returns its index.
func (f *Files) AddOwned(fd int) int {
	f.fds = append(f.fds, fd)
	f.owned = append(f.owned, true)
	return len(f.fds) - 1
}

// Len reports the number of descriptors.
func (f *Files) Len() int {
	if f == nil {
		return 0
	}
	return len(f.fds)
}

// FDs returns the descriptors in index order (for the sender).
func (f *Files) FDs() []int {
	if f == nil {
		return nil
	}
	return f.fds
}

// Received wraps descriptors that arrived from another process; the table owns
// them until taken.
func Received(fds []int) *Files {
	f := &Files{fds: fds, owned: make([]bool, len(fds))}
	for i := range f.owned {
		f.owned[i] = true
	}
	return f
}

// Take hands descriptor i to the caller, who owns it from now on. It is set
// close-on-exec so that it does not leak into processes this one starts.
func (f *Files) Take(i int) (int, error) {
	if f == nil || i < 0 || i >= len(f.fds) {
		return -1, fmt.Errorf("wire: descriptor index %d out of range (%d received)", i, f.Len())
	}
	if !f.owned[i] {
		return -1, fmt.Errorf("wire: descriptor index %d taken twice", i)
	}
	f.owned[i] = false
	unix.CloseOnExec(f.fds[i])
	return f.fds[i], nil
}

// Close closes the descriptors the table still owns. It is idempotent.
func (f *Files) Close() error {
	if f == nil {
		return nil
	}
	var first error
	for i, own := range f.owned {
		if own {
			if err := unix.Close(f.fds[i]); err != nil && first == nil {
				first = err
			}
			f.owned[i] = false
		}
	}
	return first
}

// encBuf is the writer that Marshal gives the msgpack encoder; handle
// encoders find the descriptor table through Encoder.Writer.
type encBuf struct {
	bytes.Buffer
	files *Files
}

// decBuf is the reader that Unmarshal gives the msgpack decoder; handle
// decoders find the descriptor table through Decoder.Buffered.
type decBuf struct {
	*bytes.Reader
	data  []byte // what Reader reads, for decoders that parse in place
	files *Files
	// rebuilt holds the handles decoded so far that can be closed: if the
	// value as a whole fails to decode, the caller gets only the error and
	// could not close them.
	rebuilt []io.Closer
}

// Marshal encodes v. A cyclic value is an error wrapping ErrTooDeep. Descriptors of the handles inside v are collected into
// the returned table (nil when there are none); the caller must Close it
// once the descriptors have been sent.
func Marshal(v any) ([]byte, *Files, error) {
	var buf bytes.Buffer
	files := &Files{}
	if err := AppendTo(&buf, files, v); err != nil {
		files.Close()
		return nil, nil, err
	}
	if files.Len() == 0 {
		return buf.Bytes(), nil, nil
	}
	return buf.Bytes(), files, nil
}

// AppendTo encodes v at the end of buf, collecting descriptors into files.
// files may be nil for a channel that cannot carry descriptors: a handle
// inside v is then an error wrapping ErrNoFiles.
func AppendTo(buf *bytes.Buffer, files *Files, v any) error {
	if b, ok := appendScalar(buf.AvailableBuffer(), v); ok {
		buf.Write(b)
		return nil
	}
	return appendTo(buf, files, v)
}

// appendScalar appends a lone int, int64, float64, string or bool as the
// encoder would (the common item of a queue), without a msgpack.Encoder.
func appendScalar(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case int:
		return msgp.AppendInt(b, int64(x)), true
	case int64:
		return msgp.AppendInt(b, x), true
	case float64:
		return msgp.AppendFloat64(b, x), true
	case string:
		return msgp.AppendString(b, x), true
	case bool:
		return msgp.AppendBool(b, x), true
	}
	return b, false
}

// appendTo is AppendTo's general path.
func appendTo(buf *bytes.Buffer, files *Files, v any) error {
	if err := checkNesting(v); err != nil {
		return fmt.Errorf("wire: cannot encode %T: %w", v, err)
	}
	w := encBuf{files: files}
	// Swap buffers so that the encoder writes straight into the caller's
	// storage without a copy.
	w.Buffer = *buf
	enc := msgpack.GetEncoder()
	enc.Reset(&w)
	enc.UseCompactInts(true)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	*buf = w.Buffer
	if err != nil {
		return fmt.Errorf("wire: cannot encode %T: %w", v, err)
	}
	return nil
}

// Unmarshal decodes data into v, which must be a non-nil pointer. Handles take
// their descriptors from files (which may be nil when none travelled).
//
// data may come from an untrusted peer: it is validated first (see
// Validate and Check), so malformed input is an error wrapping ErrMalformed,
// input that would decode into more memory than the decode budget an error
// wrapping ErrBudget, and never a panic or an unbounded allocation. Values
// that do not fit the Go types they are decoded into are a *DecodeError
// (see the rules in decode.go).
func Unmarshal(data []byte, files *Files, v any) error {
	if scalar(data, v) {
		return nil
	}
	return unmarshal(data, files, v)
}

// unmarshal is Unmarshal's general path.
func unmarshal(data []byte, files *Files, v any) error {
	if err := Admit(data, v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	r := &decBuf{Reader: bytes.NewReader(data), data: data, files: files}
	dec := msgpack.GetDecoder()
	dec.Reset(r)
	err := dec.DecodeValue(rv.Elem())
	msgpack.PutDecoder(dec)
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d trailing bytes", r.Len())
	}
	if err != nil {
		for _, h := range r.rebuilt {
			h.Close()
		}
		return decodeError(data, v, err)
	}
	return nil
}

// scalar decodes data into v when v points to an int, int64, float64,
// string or bool and data is exactly one value of that kind that fits: the
// common item of a queue, decoded without a msgpack.Decoder (whose type
// lookup and set-up cost more than the value). Anything else, errors
// included, is left to the general path, which words them.
func scalar(data []byte, v any) bool {
	var n int
	var err error
	switch p := v.(type) {
	case *int:
		var i int64
		if i, n, err = msgp.ReadInt(data); err == nil && n == len(data) {
			*p = int(i)
		}
	case *int64:
		var i int64
		if i, n, err = msgp.ReadInt(data); err == nil && n == len(data) {
			*p = i
		}
	case *float64:
		var f float64
		if f, n, err = msgp.ReadFloat(data); err == nil && n == len(data) {
			*p = f
		}
	case *string:
		var s string
		if s, n, err = msgp.ReadString(data); err == nil && n == len(data) {
			*p = s
		}
	case *bool:
		var b bool
		if b, n, err = msgp.ReadBool(data); err == nil && n == len(data) {
			*p = b
		}
	default:
		return false
	}
	return err == nil && n == len(data)
}

// Admit checks that data, which may come from an untrusted peer, can be
// decoded into v (a non-nil pointer) by the module's rules: it is one
// well-formed value (Validate), every struct it fills gets a field from it,
// and it stays within the decode budget (Check). Unmarshal calls it; a
// package that decodes with a msgpack.Decoder of its own calls it, then
// Decode.
func Admit(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("wire: cannot decode into %T: not a non-nil pointer", v)
	}
	if err := Validate(data); err != nil {
		return fmt.Errorf("wire: cannot decode into %T: %w", v, err)
	}
	if t := rv.Type().Elem(); !flat(t) {
		if err := Check(data, t); err != nil {
			return decodeError(data, v, err)
		}
	}
	return nil
}

// decodeError words a failed decode of data into v: a *DecodeError or the
// budget's error already says what was sent and into what; msgpack's own
// errors get both added.
func decodeError(data []byte, v any, err error) error {
	if errorsAsDecode(err) || errors.Is(err, ErrBudget) || errors.Is(err, ErrMalformed) {
		return err
	}
	what := "a value"
	if len(data) > 0 {
		what = describeCode(data[0])
	}
	return fmt.Errorf("wire: cannot decode %s into %T: %w", what, v, err)
}

// RegisterHandle makes *T travel as a handle under extension number id.
// enc returns the state the other side needs and adds descriptors to fds;
// dec rebuilds the object in place from that state, taking descriptors from
// fds. Call it from an init function.
//
// If a value fails to decode after some of its handles were rebuilt, the
// ones whose *T implements io.Closer are closed: the caller gets only the
// error and could not close them itself.
func RegisterHandle[T any](id int8, enc func(v *T, fds *Files) ([]byte, error), dec func(v *T, state []byte, fds *Files) error) {
	// msgpack encodes these through the extension, not their fields.
	handleTypes.Store(reflect.TypeFor[*T](), struct{}{})
	handleTypes.Store(reflect.TypeFor[T](), struct{}{})
	msgpack.RegisterExtEncoder(id, (*T)(nil), func(e *msgpack.Encoder, v reflect.Value) ([]byte, error) {
		w, ok := e.Writer().(*encBuf)
		if !ok || w.files == nil {
			return nil, fmt.Errorf("%T: %w", v.Interface(), ErrNoFiles)
		}
		return enc(v.Interface().(*T), w.files)
	})
	msgpack.RegisterExtDecoder(id, (*T)(nil), func(d *msgpack.Decoder, v reflect.Value, n int) error {
		r, ok := d.Buffered().(*decBuf)
		if !ok || r.files == nil {
			return fmt.Errorf("%s: %w", v.Type(), ErrNoFiles)
		}
		if n > r.Len() {
			return fmt.Errorf("wire: %s state of %d bytes truncated", v.Type(), n)
		}
		state := make([]byte, n)
		if err := d.ReadFull(state); err != nil {
			return err
		}
		h := v.Interface().(*T)
		if err := dec(h, state, r.files); err != nil {
			return err
		}
		if c, ok := any(h).(io.Closer); ok {
			r.rebuilt = append(r.rebuilt, c)
		}
		return nil
	})
}

// rawFD returns the descriptor behind a syscall.Conn without changing its
// blocking mode (os.File.Fd would switch it to blocking).
func rawFD(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// NewFile wraps a received descriptor as an *os.File in the mode it arrived
// in. A non-blocking one (what os.Pipe, net and this module make) goes
// through the runtime poller, so deadlines work and Close unblocks readers.
// A blocking one stays blocking: O_NONBLOCK belongs to the open file
// description, which the sender shares (and for a terminal, or a shell's
// pipe, other programs too); setting it here would make their blocking
// reads fail with EAGAIN, and leave a shell's stdin non-blocking after we
// exit.
func NewFile(fd int, name string) *os.File {
	return os.NewFile(uintptr(fd), name)
}

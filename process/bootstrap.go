//go:build linux

package process

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// EnvBootstrap is the environment variable that marks a process as a worker
// started by this package. The parent sets it in the worker's environment
// only, and Init removes it before the worker's function runs, so neither a
// program nor the programs its workers start with os/exec see it. A program
// has no reason to set it: a binary started by hand with it set exits at
// Init, saying it was not started by the multiprocessing runtime.
const EnvBootstrap = "MPGO_BOOTSTRAP_FD"

// The parent and the worker talk over a dedicated socketpair that the worker
// inherits as descriptor bootstrapFD (the value of EnvBootstrap), never over
// argv or stdout: a library that prints must not break start-up. Each
// message is a 4-byte big-endian length and a body.
//
//	parent -> worker: a bootstrap (msgpack), then the argument (its encoded
//	                  bytes as they are, so a large one is never copied
//	                  into a second message)
//	worker -> parent: report{Kind: "started"} once the function is about
//	                  to run, then report{Kind: "error"} if it failed (or
//	                  if start-up failed).
//
// The parent keeps its end open while the worker runs: the worker sees it
// closed when the parent is gone, whatever ended it (watchParent).
const (
	bootstrapFD     = 3
	firstHandleFD   = 4
	protocolVersion = 3
	// maxHeaderSize bounds the bootstrap without its argument: names and
	// the key, far below this.
	maxHeaderSize = 1 << 20
	maxReportSize = 1 << 20
	// maxReportMessage bounds the error text a child reports; a longer
	// one keeps its head and its tail (where a panic's stack ends).
	maxReportMessage = 64 << 10
)

// maxArgSize is the largest encoded argument Start sends (and a worker
// accepts). A variable only so that a test can lower it.
var maxArgSize = 1 << 30

type bootstrap struct {
	Version   int
	ExeID     string
	Func      string
	NFiles    int
	ParentPid int
	Name      string
	Identity  string
	Daemon    bool
	AuthKey   []byte
	// Argv0 is the parent's os.Args[0]: the worker's own argv[0] carries
	// its name for ps, and its os.Args must be the parent's.
	Argv0 string
}

type report struct {
	Kind    string   // "started" or "error"
	Message string   // for "error"; a second "error" (exit work failed) adds a line
	Codes   []string // the sentinel errors Message matches (exithook.Codes)
}

// encodeMsg frames v: a 4-byte big-endian length and the msgpack body.
func encodeMsg(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) > math.MaxUint32 {
		return nil, fmt.Errorf("message of %d bytes over the limit", len(b))
	}
	out := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	copy(out[4:], b)
	return out, nil
}

// writeMsg writes one framed message to a blocking descriptor (the child's
// end of the bootstrap socket).
func writeMsg(fd int, v any) error {
	out, err := encodeMsg(v)
	if err != nil {
		return err
	}
	return writeAll(fd, out)
}

// startedFrame is encodeMsg(report{Kind: "started"}) (a test checks it),
// written as it is: every worker sends it, and encoding it would bring the
// encoder's reflection into the start-up of a worker whose function
// succeeds.
const startedFrame = "\x00\x00\x00\x1e\x83\xa4Kind\xa7started\xa7Message\xa0\xa5Codes\xc0"

func writeAll(fd int, out []byte) error {
	for len(out) > 0 {
		n, err := unix.Write(fd, out)
		if err == unix.EINTR || err == unix.EAGAIN {
			if err == unix.EAGAIN {
				waitWritable(fd)
			}
			continue
		}
		if err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

func waitWritable(fd int) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	unix.Poll(p, -1)
}

// readMsg reads one message from r into v; io.EOF at a message boundary.
func readMsg(r io.Reader, v any, limit int) error {
	b, err := readFrame(r, limit)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}

// readFrame reads one message's body; io.EOF at a message boundary.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if int64(n) > int64(limit) {
		return nil, fmt.Errorf("message of %d bytes over the limit of %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// fdReader reads a raw descriptor with blocking system calls.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// selfID identifies the running executable file, so that a child can tell
// it was started from the same build as its parent. /proc/self/exe names
// the inode the process was started from even if the path was replaced.
// Every worker computes it at start-up: one stat, no fmt.
var selfID = sync.OnceValue(func() string {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) != nil && unix.Stat(selfPath(), &st) != nil {
		return "unknown"
	}
	b := make([]byte, 0, 64)
	for i, n := range []uint64{st.Dev, st.Ino, uint64(st.Size)} {
		if i > 0 {
			b = append(b, ':')
		}
		b = strconv.AppendUint(b, n, 16)
	}
	b = append(b, ':')
	b = strconv.AppendInt(b, st.Mtim.Sec, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Mtim.Nsec, 10)
	return string(b)
})

// selfPath is the path a child is started from: /proc/self/exe, or where
// /proc is not mounted, the executable's path.
var selfPath = sync.OnceValue(func() string {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) == nil {
		return "/proc/self/exe"
	}
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
})

// clipMessage shortens s to about max bytes, keeping its head and its tail.
func clipMessage(s string, max int) string {
	if len(s) <= max {
		return s
	}
	head, tail := max/2, len(s)-max/2
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + fmt.Sprintf("\n\n[... %d bytes elided ...]\n\n", tail-head) + s[tail:]
}

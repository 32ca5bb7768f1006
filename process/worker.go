//go:build linux

package process

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// What a worker does before main, in this package's init function: that
// runs on the process's first thread (the runtime locks the main goroutine
// to it during initialization), whose name is the process's, and before
// the packages that use this one have initialized. Nothing here waits for
// the parent, and the parent does not wait for it: Start returns once the
// worker is executing.
func init() {
	if _, ok := os.LookupEnv(EnvBootstrap); !ok {
		return
	}
	early.booted = make(chan struct{})
	early.inherited = inheritedFDs()
	// The parent's pid from the bootstrap socket (the process that made
	// it), not from getppid: the parent may be dead already, and this
	// worker reparented.
	early.ppid = bootstrapPeer(bootstrapFD)
	if early.ppid != 0 {
		early.watched = true
		go watchParent(bootstrapFD)
	} else {
		early.ppid = unix.Getppid() // started by hand; Init says so
	}
	if name := parentName(early.ppid); len(name) > 0 {
		// This thread's name is the process's, the one ps, top and pgrep
		// show. The runtime's other threads keep "exe" (most are started
		// from threads other than this one): renaming each through /proc
		// cost about 0.15 ms of every start.
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append(name, 0)[0])), 0, 0, 0)
	}
	early.handled = make(chan struct{})
	early.intC = make(chan os.Signal, 1)
	go handleInterrupt()
}

// bootstrapPeer returns the pid of the process that made the socket at fd
// when it is the socket the parent gave (and not whatever a binary started
// by hand with EnvBootstrap set has at that number), else 0.
func bootstrapPeer(fd int) int {
	if os.Getenv(EnvBootstrap) != strconv.Itoa(fd) {
		return 0
	}
	domain, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err1 != nil || err2 != nil || domain != unix.AF_UNIX || typ != unix.SOCK_STREAM {
		return 0
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}

var early struct {
	// inherited lists the descriptors above 2 without close-on-exec at
	// start-up. Every descriptor Go creates is close-on-exec, so these came
	// through exec: the bootstrap socket and the handles, and whatever the
	// parent held without the flag (one inherited from a shell, one opened
	// with syscall.Open), which runChild closes.
	inherited []int
	// ppid is the parent's pid, to tell its death from a retired thread.
	ppid int
	// booted is closed once runChild has read the bootstrap and set child.
	booted chan struct{}
	gone   sync.Once
	// watched is set when watchParent watches the bootstrap socket.
	watched bool
	// handled is closed once handleInterrupt handles SIGINT, which comes
	// on intC; intIgnored is whether it was ignored before.
	handled    chan struct{}
	intC       chan os.Signal
	intIgnored bool
	// interrupt cancels the function's ctx: SIGINT calls it once runChild
	// has set it, under mu.
	mu        sync.Mutex
	interrupt context.CancelCauseFunc
}

// bootGrace bounds how long a worker whose parent died waits for its own
// bootstrap to be read (the parent may exit right after Start), to know
// its name and whether it is a daemon, before it dies silently.
const bootGrace = 5 * time.Second

// inheritedFDs lists, with raw system calls (this runs in every worker's
// start-up, before main), the descriptors above 2 that are not
// close-on-exec.
func inheritedFDs() []int {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(dir)
	var fds []int
	var buf [2048]byte
	for {
		n, err := unix.Getdents(dir, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return fds
		}
		// struct linux_dirent64: ino, off (8 bytes each), reclen (2),
		// type (1), then the NUL-terminated name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			fd, ok := atoi(b[19:reclen])
			b = b[reclen:]
			if !ok || fd <= 2 || fd == dir {
				continue
			}
			flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err == nil && flags&unix.FD_CLOEXEC == 0 {
				fds = append(fds, fd)
			}
		}
	}
}

// atoi parses the decimal number at the start of a NUL-padded name.
func atoi(name []byte) (int, bool) {
	n, digits := 0, 0
	for _, c := range name {
		if c < '0' || c > '9' || n > 1<<30 {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return n, digits > 0
}

// closeInherited closes the descriptors that came through exec other than
// those below keep (0-2, the bootstrap socket, the handles). A descriptor
// that has been made close-on-exec since start-up is the program's own
// (a number freed and reused by a package's init function) and stays.
func closeInherited(keep int) {
	for _, fd := range early.inherited {
		if fd < keep {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
	early.inherited = nil
}

// parentName returns the parent's command name (comm, what ps, top and
// pgrep show and match), which the worker takes instead of the "exe" that
// exec from /proc/self/exe gave it; the program's name from argv[0] if
// the parent's is not there to read.
func parentName(ppid int) []byte {
	var buf [64]byte
	if fd, err := unix.Open("/proc/"+strconv.Itoa(ppid)+"/comm", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		n, err := unix.Read(fd, buf[:])
		unix.Close(fd)
		if err == nil && n > 1 {
			return bytes.TrimSuffix(buf[:n], []byte("\n"))
		}
	}
	if len(os.Args) > 0 {
		return []byte(filepath.Base(strings.SplitN(os.Args[0], ": ", 2)[0]))
	}
	return nil
}

// watchParent ends the worker when its parent is gone, whatever ended it:
// the parent's end of the bootstrap socket (which no other process holds:
// it is close-on-exec) is then closed, which poll reports (POLLRDHUP) with
// or without data left to read, and from the start of the worker's life.
// The worker then says it dies because its parent ended without joining
// it, and dies (parentGone). It waits in a system call, on a thread of its
// own, from this package's init function on; no signal is involved, so a
// parent's death at any moment of the worker's start-up is seen, and no
// handler has to be set up first.
func watchParent(fd int) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		p[0].Revents = 0
		n, err := unix.Poll(p, -1)
		if err != nil {
			if err != unix.EINTR {
				time.Sleep(10 * time.Millisecond) // ENOMEM: try again
			}
			continue
		}
		if n > 0 && p[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			parentGone()
		}
		if n > 0 && p[0].Revents&unix.POLLNVAL != 0 {
			return // the program closed the socket: nothing left to watch
		}
	}
}

// handleInterrupt handles SIGINT, on a goroutine of its own so that the
// start-up goes on meanwhile (signal.Notify waits for the runtime's
// signal thread). SIGINT (Process.Interrupt) cancels the function's ctx
// once runChild has set early.interrupt, and does nothing more after that,
// as signal.NotifyContext does; before, it ends the worker as it would
// without a handler.
func handleInterrupt() {
	// Ignored from the start (nohup, a shell's background job), SIGINT
	// stays ignored until the function runs, as it would without a
	// handler. Notify forgets that: ask first.
	early.intIgnored = signal.Ignored(syscall.SIGINT)
	signal.Notify(early.intC, syscall.SIGINT)
	close(early.handled)
	for range early.intC {
		interrupted()
	}
}

// errInterrupted is the cause of the ctx of a function ended by SIGINT,
// the text signal.NotifyContext gives.
var errInterrupted = errors.New("interrupt signal received")

func interrupted() {
	early.mu.Lock()
	defer early.mu.Unlock()
	if early.interrupt != nil {
		early.interrupt(errInterrupted)
		return
	}
	if early.intIgnored {
		return
	}
	// The function has not started: end the worker as SIGINT's default
	// action does (the runtime's, with no handler, exit code -2).
	signal.Reset(syscall.SIGINT)
	unix.Kill(os.Getpid(), unix.SIGINT)
}

// parentGone ends a worker whose parent died. A non-daemon worker first
// writes one line on stderr: its parent ended without joining it, which
// in a Go program usually means main returned without process.Shutdown.
// It never returns.
func parentGone() {
	early.gone.Do(func() {
		select {
		case <-early.booted:
			if !child.daemon {
				// The worker cannot tell an exit from a kill: the line says
				// both, and gives the advice for the case a program can fix.
				fmt.Fprintf(os.Stderr, "multiprocessing: process %s (pid %d) killed: its parent (pid %d) ended without joining it (it exited or was killed). "+
					"If it returned from main, call process.Shutdown(ctx) before main returns (defer it right after process.Init()), "+
					"or start the process with process.WithDaemon() if it may be killed at exit.\n",
					child.name, os.Getpid(), child.parentPid)
			}
		case <-time.After(bootGrace):
		}
		unix.Kill(os.Getpid(), unix.SIGKILL)
	})
	select {} // SIGKILL is on its way
}

// argv0 is the parent's os.Args[0], "" if it has none.
func argv0() string {
	if len(os.Args) == 0 {
		return ""
	}
	return os.Args[0]
}

// workerTitle is a worker's argv[0]: the program's, then the process
// name, as ps -o args shows it ("prog: Process-3"). A NUL would end it
// early, so none is kept; a long name is cut.
func workerTitle(name string) string {
	name = strings.ReplaceAll(name, "\x00", "")
	if len(name) > 256 {
		name = name[:256]
	}
	return argv0() + ": " + name
}

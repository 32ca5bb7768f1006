//go:build linux

package process

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// What a worker does before main, in this package's init function: that
// runs on the process's first thread (the runtime locks the main goroutine
// to it during initialization), the thread the parent armed the
// parent-death signal on, and before the packages that use this one have
// initialized.
func init() {
	if _, ok := os.LookupEnv(EnvBootstrap); !ok {
		return
	}
	early.booted = make(chan struct{})
	early.inherited = inheritedFDs()
	nameLikeParent()
	watchParent()
	if isBootstrapSocket(bootstrapFD) {
		writeMsg(bootstrapFD, report{Kind: "armed"})
	}
}

// isBootstrapSocket tells the socket the parent gave from whatever a
// binary started by hand with EnvBootstrap set has at that number.
func isBootstrapSocket(fd int) bool {
	if os.Getenv(EnvBootstrap) != strconv.Itoa(fd) {
		return false
	}
	domain, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err1 == nil && err2 == nil && domain == unix.AF_UNIX && typ == unix.SOCK_STREAM
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
}

// sigParentDied is the parent-death signal a worker runs with once its
// handler is in place: a real-time signal, which nothing else sends (Go's
// runtime and the C library use none above 33). The parent arms SIGKILL,
// which covers the worker's start-up whatever happens in it, but a process
// killed by SIGKILL cannot say why it died; Start returns once the worker
// has switched (see awaitArmed).
const sigParentDied = syscall.Signal(60)

// bootGrace bounds how long a worker whose parent died waits for its own
// bootstrap to be read (the parent may exit right after Start), to know
// its name and whether it is a daemon, before it dies silently.
const bootGrace = 5 * time.Second

func inheritedFDs() []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
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

// nameLikeParent gives the worker its parent's command name (comm, what
// ps, top and pgrep show and match), which exec from /proc/self/exe set to
// "exe". Each thread has its own; the ones started from now on copy it
// from the thread that starts them.
func nameLikeParent() {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(unix.Getppid()) + "/comm")
	name := strings.TrimSuffix(string(b), "\n")
	if (err != nil || name == "") && len(os.Args) > 0 {
		name = filepath.Base(strings.SplitN(os.Args[0], ": ", 2)[0])
	}
	if name == "" {
		return
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		os.WriteFile("/proc/self/task/"+t.Name()+"/comm", []byte(name), 0)
	}
}

// watchParent replaces the SIGKILL the parent armed with sigParentDied,
// handled here: the worker then says it dies because its parent ended
// without joining it, and dies. The lifeline (runChild) is the second way
// the death is seen, should the signal be lost to a program that resets
// its signal handlers.
func watchParent() {
	early.ppid = unix.Getppid()
	c := make(chan os.Signal, 1)
	signal.Notify(c, sigParentDied)
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sigParentDied), 0, 0, 0); err != nil {
		signal.Stop(c) // SIGKILL stays armed
		return
	}
	go func() {
		for range c {
			// The signal also comes when the parent's thread that started
			// us exits while the parent lives on, and anyone may send it.
			if unix.Getppid() != early.ppid {
				parentGone()
			}
		}
	}()
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

//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpgo/multiprocessing/internal/exithook"
	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

// Init must be the first statement of main, and of TestMain in tests: it is
// Go's `if __name__ == "__main__":`. In the parent it returns at once. In a
// child started by this package it runs the registered function the parent
// asked for and exits the process; it never returns, so nothing of main runs
// twice.
//
// A child exits with 0 when the function returns nil, with 1 when it returns
// an error or panics (the text and the stack reach the parent's
// *ExitError) or when its exit work fails (a queue that could not write
// the items it buffered), and with whatever code the function passes to
// os.Exit.
func Init() {
	initialized.Store(true)
	v, ok := os.LookupEnv(EnvBootstrap)
	if !ok {
		return
	}
	// The variable is for this process only: a program this child starts
	// with os/exec is not one of ours.
	os.Unsetenv(EnvBootstrap)
	fd, err := strconv.Atoi(v)
	if err != nil || fd != bootstrapFD {
		fatal("%s=%q is set, but this process was not started by the multiprocessing runtime", EnvBootstrap, v)
	}
	os.Exit(runChild(fd))
}

// initialized is set once Init has been called: Start refuses to run
// without it, and a function registered after it is marked late.
var initialized atomic.Bool

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "multiprocessing: "+format+"\n", args...)
	os.Exit(2)
}

// fatalReport is fatal in a worker that has its bootstrap socket: the
// parent's ExitError carries the text too.
func fatalReport(fd int, format string, args ...any) {
	writeMsg(fd, report{Kind: "error", Message: "multiprocessing: " + fmt.Sprintf(format, args...)})
	fatal(format, args...)
}

// child is the state of a worker process, set once by runChild.
var child struct {
	active    bool
	name      string
	identity  string
	parentPid int
	daemon    bool
	authKey   []byte
}

func runChild(fd int) int {
	unix.CloseOnExec(fd)
	var b bootstrap
	r := fdReader(fd)
	if err := readMsg(r, &b, maxHeaderSize); err != nil {
		dieIfOrphaned()
		// Not fatalReport: descriptor fd may be anything here.
		fatal("no bootstrap on descriptor %d (%v): worker processes are started by process.Start, not by hand", fd, err)
	}
	if b.Version != protocolVersion {
		fatalReport(fd, "bootstrap protocol %d, this binary speaks %d: parent and worker are different builds; rebuild and restart", b.Version, protocolVersion)
	}
	if b.ExeID != selfID() {
		fatalReport(fd, "this worker is not the parent's executable (%s != %s): rebuild and restart", selfID(), b.ExeID)
	}
	arg, err := readFrame(r, maxArgSize)
	if err != nil {
		dieIfOrphaned()
		fatalReport(fd, "cannot read the argument from the parent: %v", err)
	}
	child.active = true
	child.name = b.Name
	child.identity = b.Identity
	child.parentPid = b.ParentPid
	child.daemon = b.Daemon
	child.authKey = b.AuthKey
	if len(os.Args) > 0 {
		os.Args[0] = b.Argv0 // argv[0] also names the worker for ps
	}
	closeInherited(firstHandleFD + b.NFiles)
	if early.booted != nil { // nil if the variable was set after start-up
		close(early.booted)
	}
	// The parent may have died already (watchParent sees that too, but the
	// worker must not run its function first). Compare with the pid it
	// recorded, never with 1: in a container the parent may be pid 1.
	if unix.Getppid() != b.ParentPid {
		parentGone()
	}

	e, ok := lookup(b.Func)
	if !ok {
		msg := fmt.Sprintf("process: no function registered as %q in this binary: register it at package level so every process has it", b.Func)
		writeMsg(fd, report{Kind: "error", Message: msg})
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	fds := make([]int, b.NFiles)
	for i := range fds {
		fds[i] = firstHandleFD + i
	}
	files := wire.Received(fds)

	if !early.watched {
		go lifeline(fd)
	}

	ctx, stop := interruptible()
	defer stop()
	if err := writeAll(fd, []byte(startedFrame)); err != nil {
		return 1
	}
	err = call(ctx, e, arg, files)
	files.Close()
	// Report a failure at once: the work below can take a while (up to a
	// minute joining children) or end the process (a panicking hook, a
	// Terminate from an impatient parent), and the text must not be lost.
	if err != nil {
		writeMsg(fd, report{Kind: "error", Message: clipMessage(err.Error(), maxReportMessage), Codes: exithook.Codes(err)})
	}
	// Exit work that fails (items a queue could not write) fails the
	// worker: lost data is never an exit code 0.
	if herr := exithook.Run(); herr != nil {
		writeMsg(fd, report{Kind: "error", Message: clipMessage(herr.Error(), maxReportMessage), Codes: exithook.Codes(herr)})
		err = herr
	}
	// Join the children this worker started, as Python does at exit.
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	Shutdown(sctx)
	cancel()
	if err != nil {
		return 1
	}
	return 0
}

// interruptible returns the function's ctx, which SIGINT cancels from now
// on (see handleInterrupt).
func interruptible() (context.Context, context.CancelFunc) {
	if early.handled == nil { // the variable was set after start-up
		return signal.NotifyContext(context.Background(), syscall.SIGINT)
	}
	<-early.handled
	if signal.Ignored(syscall.SIGINT) {
		// A package's init function has ignored it since: take it back
		// for the function's ctx, as signal.NotifyContext here would.
		signal.Notify(early.intC, syscall.SIGINT)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	early.mu.Lock()
	early.interrupt = cancel
	early.mu.Unlock()
	return ctx, func() { cancel(nil) }
}

// dieIfOrphaned ends, silently, a worker whose bootstrap could not be read
// because its parent died while it sent it (during Start: a kill, not a
// main that returned): there is no one to tell, and the failure to read is
// not the worker's.
func dieIfOrphaned() {
	if early.booted != nil && unix.Getppid() != early.ppid {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {}
	}
}

// call runs the function and turns a panic into an error carrying the
// panic value and the stack.
//
// The function runs on a goroutine of its own so that runtime.Goexit in it
// (a library's t.FailNow-like helper, say) ends only that goroutine. On the
// main goroutine it would leave the process without main and without
// exit, alive until its parent dies, and Join waiting for it.
func call(ctx context.Context, e entry, arg []byte, files *wire.Files) error {
	done := make(chan error, 1)
	go func() {
		returned := false
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v\n\n%s", r, trimStack(debug.Stack()))
			} else if !returned {
				done <- errors.New("process: the function called runtime.Goexit")
			}
		}()
		err := e.run(ctx, arg, files)
		returned = true
		done <- err
	}()
	return <-done
}

// lifeline ends the process when the parent is gone: its end of the
// bootstrap socket reaches end of file. It is watchParent's stand-in in a
// worker whose init function did not see EnvBootstrap.
func lifeline(fd int) {
	var b [64]byte
	for {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if n == 0 || err != nil {
			parentGone()
		}
	}
}

// trimStack drops the frames between the goroutine header and the frame
// that panicked (debug.Stack, our recover and the runtime's panic), which
// only mislead a reader.
func trimStack(s []byte) []byte {
	head, rest, ok := bytes.Cut(s, []byte("\n"))
	if !ok {
		return s
	}
	i := bytes.Index(rest, []byte("\npanic("))
	if i < 0 {
		return s
	}
	after := rest[i+1:]
	// Skip the panic( line and its file:line line.
	for range 2 {
		if j := bytes.IndexByte(after, '\n'); j >= 0 {
			after = after[j+1:]
		}
	}
	return append(append(head, '\n'), after...)
}

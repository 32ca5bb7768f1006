//go:build linux

// Package process runs Go functions in child processes, the analogue of
// Python's multiprocessing.Process.
//
// A child is the same binary, re-executed from /proc/self/exe. Which
// registered function to run and its argument reach the child over a
// dedicated descriptor, never argv or stdout. So the program must let the
// child find its way before main does real work:
//
//	var greet = process.Register("greet", func(ctx context.Context, name string) error {
//		fmt.Println("hello,", name)
//		return nil
//	})
//
//	func main() {
//		process.Init() // Python: if __name__ == "__main__":
//		defer process.Shutdown(ctx) // Python joins children at exit
//		p := process.New(greet, "world")
//		if err := p.Start(); err != nil { ... }
//		if err := p.Join(ctx); err != nil { ... }
//	}
//
// [Init] returns at once in the parent; in a child it runs the function and
// exits. Test binaries call it first in TestMain. Start refuses to run
// without it ([ErrNoInit]), and refuses a function registered after it.
//
// Go cannot run code when main returns, so [Shutdown] is Python's implicit
// join at exit: without it, the children still running when main returns
// die with it, and each non-daemon one writes a line on stderr naming
// itself and saying to call Shutdown (or to make it a daemon).
//
// # Arguments and handles
//
// The argument is encoded as msgpack: exported struct fields travel.
// Objects that own OS resources travel as working handles: *pipe.Conn,
// queues, locks, manager proxies, *os.File, net.Conn and net.Listener, at
// top level or in fields, slices, maps and interface-typed fields. The
// parent may close its copies as soon as [Process.Start] returns.
//
// # Exit codes and errors
//
// As Python's exitcode: 0 on success; 1 when the function returns an error
// or panics; the code given to os.Exit; -N when killed by signal N.
// [Process.Join] returns an [*ExitError] with the pid, the code or signal,
// the function's error text or the panic value with its stack, and the tail
// of stderr when it was captured.
//
// # No orphans
//
// A child dies with its parent, whatever kills the parent (SIGKILL
// included): from early in its start-up (this package's init function) it
// watches its end of the bootstrap socket, which the kernel closes on the
// parent's side when the parent ends, and it then writes the line above on
// stderr, unless it is a daemon, and kills itself with SIGKILL. This holds
// from the start of its life (a parent dead before then is seen at once)
// and [Process.Start] does not wait for it: it returns once the child is
// executing. A child whose parent was killed while Start was still sending
// it its argument dies silently; one whose start-up is held between this
// package's init function and [Init] (a slow init function elsewhere) dies
// silently within 5 s; one held forever by an init function that runs
// before this package's is not reached.
// A child that is stopped (SIGSTOP) when its parent dies does this once it
// is continued. A worker joins its own non-daemon children when its
// function returns; daemon children are terminated by [Shutdown] and may
// not start children.
//
// # What a child has
//
// The environment of the parent (plus [WithEnv]) and the parent's os.Args.
// Its argv[0] as the system shows it is the parent's followed by the process
// name ("prog: Process-3" in ps -o args), and its command name (comm: ps,
// top, pgrep) is the parent's (that of its first thread: the runtime's
// other threads keep "exe", as ps -L shows). Its descriptors are 0-2 (stdin is
// /dev/null) and the handles in its argument: a descriptor the parent holds
// without close-on-exec (inherited from a shell, opened with syscall.Open)
// is closed in the child before its function runs, as Python's spawn does.
//
// # Output
//
// [WithStdout] and [WithStderr] writers get all of the child's output by the
// time [Process.Join] returns. A process the child started (with os/exec)
// that inherited the descriptor and outlives the child does not hold Join:
// what it writes after the child's exit is dropped. A writer that fails is
// not written to again; the child is not disturbed.
//
// # Caveats
//
//   - Linux only (pidfd, prctl). Signals go through a pidfd, so they never
//     reach a process that reused a dead child's pid (without pidfds, before
//     Linux 5.3, the pid is never signalled once reaped).
//   - The child runs from /proc/self/exe: deleting or replacing the program
//     file while it runs does not change what its children run.
//   - The argument is limited to 1 GiB encoded (Start checks it once
//     encoded, before any child exists); the error text a child reports
//     to 64 KiB (its head and tail are kept).
//   - [Process.Interrupt] before the child's function has started finds no
//     handler: SIGINT's default action ends the child (exit code -2).
//   - The function runs on a goroutine of its own; runtime.Goexit in it
//     ends the child with an error. Goroutines it leaves running end with
//     the process, as at the end of main.
//
// Like the whole module, this package runs on Linux only; on another system
// its build stops on the identifier multiprocessing_requires_Linux.
package process

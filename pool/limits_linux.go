package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mpgo/multiprocessing/pipe"
	"golang.org/x/sys/unix"
)

// applyLimits sets the worker's resource limits before any task (and the
// initializer) runs. Setting them in the child itself, rather than with
// prlimit from the parent after start, leaves no window in which a task
// runs unlimited.
func applyLimits(rt *workerRT, a workerArg) error {
	if a.MemLimit > 0 {
		// RLIMIT_DATA, not RLIMIT_AS: the Go runtime reserves far more
		// address space than it uses (PROT_NONE arenas), which RLIMIT_AS
		// counts and RLIMIT_DATA (since Linux 4.7) does not. The hard limit
		// is lowered too, so that a task cannot lift it.
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_DATA, &old); err != nil {
			return fmt.Errorf("pool: getrlimit(RLIMIT_DATA): %w", err)
		}
		lim := min(uint64(a.MemLimit), old.Max)
		if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
			return fmt.Errorf("pool: setrlimit(RLIMIT_DATA, %d): %w", lim, err)
		}
		// Let the collector work harder before the kernel says no.
		debug.SetMemoryLimit(int64(lim) / 10 * 9)
	}
	if a.CPUTime > 0 {
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_CPU, &old); err != nil {
			return fmt.Errorf("pool: getrlimit(RLIMIT_CPU): %w", err)
		}
		rt.cpuHard = old.Max
		// Only the soft limit moves, before each task: an unprivileged
		// process may raise its soft limit up to the hard one, but never
		// raise the hard one again. Crossing the soft limit sends SIGXCPU,
		// which the Go runtime ignores unless asked.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGXCPU)
		go func() {
			for range c {
				if cpuUsed() >= rt.cpuSoft.Load() {
					// The running task is over its budget (not a stale
					// signal from the one before). Tell the parent why,
					// then die the way a stuck process is made to.
					rt.flags.Or(flagCPU)
					unix.Kill(os.Getpid(), unix.SIGKILL)
				}
			}
		}()
	}
	return nil
}

// armCPU gives the item about to run cpuTime more seconds of CPU.
func (rt *workerRT) armCPU() {
	soft := cpuUsed() + int64(cpuSeconds(rt.cpuTime).Seconds())
	rt.cpuSoft.Store(soft)
	cur := uint64(soft)
	if cur > rt.cpuHard {
		cur = rt.cpuHard
	}
	unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: cur, Max: rt.cpuHard})
}

// cpuUsed returns the CPU seconds this process has used, rounded down, as
// the kernel compares them with RLIMIT_CPU.
func cpuUsed() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Sec + ru.Stime.Sec + (int64(ru.Utime.Usec)+int64(ru.Stime.Usec))/1e6
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, pipe.ErrClosed)
}

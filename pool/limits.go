//go:build linux

package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

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
		// counts and RLIMIT_DATA (since Linux 4.7) does not. What it does
		// count is already large in a fresh worker (thread stacks of 8 MiB
		// each in a cgo binary, the runtime's own mappings: about 120 MiB,
		// mostly never touched), so the limit is that much plus the
		// caller's budget. The hard limit is lowered too, so that a task
		// cannot lift it.
		base, err := vmData()
		if err != nil {
			return fmt.Errorf("pool: MemoryLimit: %w", err)
		}
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_DATA, &old); err != nil {
			return fmt.Errorf("pool: getrlimit(RLIMIT_DATA): %w", err)
		}
		lim := min(base+uint64(a.MemLimit), old.Max)
		if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
			return fmt.Errorf("pool: setrlimit(RLIMIT_DATA, %d): %w", lim, err)
		}
		// Let the collector work harder before the kernel says no.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		debug.SetMemoryLimit(int64(ms.Sys) + a.MemLimit/10*9)
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
				if cpuUsed() >= time.Duration(rt.cpuSoft.Load())*time.Second {
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

// armCPU gives the item about to run at least cpuTime more of CPU: the
// soft limit is a whole number of seconds, rounded up.
func (rt *workerRT) armCPU() {
	soft := int64(cpuSeconds(cpuUsed() + rt.cpuTime).Seconds())
	rt.cpuSoft.Store(soft)
	cur := uint64(soft)
	if cur > rt.cpuHard {
		cur = rt.cpuHard
	}
	unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: cur, Max: rt.cpuHard})
}

// cpuUsed returns the CPU time (user and system) this process has used.
func cpuUsed() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmData returns the process's VmData (private writable mappings, what
// RLIMIT_DATA limits) in bytes.
func vmData() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmData %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmData in /proc/self/status")
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, pipe.ErrClosed)
}

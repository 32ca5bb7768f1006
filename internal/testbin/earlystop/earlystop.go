//go:build linux

// Package earlystop holds a process at the very start of its life, when
// its environment has MPGO_TEST_STOP_EARLY set: its init function stops
// the process (SIGSTOP) before the multiprocessing packages initialize. A
// package's init runs before that of every package whose imports include
// all of its own and whose import path sorts after it (the Go
// specification's order), which holds for this one and those packages.
// Tests import it to hold a worker, started with the variable, before its
// start-up (while its parent dies, say) and continue it with SIGCONT.
package earlystop

import (
	"os"
	"strconv"
	"syscall"
)

// Env is the variable that stops the process at start-up.
const Env = "MPGO_TEST_STOP_EARLY"

func init() {
	if os.Getenv(Env) != "" {
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}

// Stopped reports whether process pid is stopped (its state is T).
func Stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and
	// may itself hold any byte.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'T'
		}
	}
	return false
}

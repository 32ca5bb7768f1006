//go:build linux

// Package testbin holds test helpers: it builds the example programs for
// their end-to-end tests, and checks that no child process or goroutine
// outlives a package's tests.
package testbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Build compiles the main package in dir (relative to the calling test's
// directory; "." for the test's own package) into a temporary directory and
// returns the binary's path. The -race flag follows the test binary's, so a
// race-enabled CI run checks the examples too.
func Build(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(mustAbs(t, dir)))
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, dir)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

func mustAbs(t testing.TB, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// LiveChildren returns the pids of this process's children that are still
// running (exited ones waiting to be reaped are not listed). A TestMain
// checks it after m.Run: no worker may outlive the tests.
func LiveChildren() []int {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			kids = append(kids, pid)
		}
	}
	return kids
}

// VerifyTestMain runs the tests, then fails the run if a child process
// outlived them or a goroutine leaked (goleak), and exits. Every package
// whose tests start processes calls it from TestMain, after process.Init.
//
// Under -race every process sleeps a second at exit so that late reports
// can print (GORACE atexit_sleep_ms); the children of these tests are many
// and short-lived, so unless GORACE is set it is set to no sleep. A child
// that finds a race still fails: it exits with code 66.
func VerifyTestMain(m *testing.M) {
	if _, ok := os.LookupEnv("GORACE"); !ok {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	if code == 0 {
		if kids := LiveChildren(); len(kids) > 0 {
			fmt.Fprintf(os.Stderr, "child processes outlived the tests: %v\n", kids)
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// FDCount counts this process's open descriptors (from /proc/self/fd), for
// leak checks: compare the count before and after the work.
func FDCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// NeedFDs makes room for n more open descriptors: it raises the soft
// RLIMIT_NOFILE to the hard one if needed, and skips the test when even
// that is too low.
func NeedFDs(t testing.TB, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	want := uint64(FDCount(t) + n + 64)
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		t.Skipf("RLIMIT_NOFILE hard limit %d, the test needs %d descriptors", lim.Max, want)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// Command returns a command that runs bin (an example built by Build) with
// args, killed if it runs longer than d or when the test ends. Under -race
// every process would sleep a second at exit (GORACE atexit_sleep_ms); the
// examples start many short-lived children, so the command runs without it.
func Command(t testing.TB, d time.Duration, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ContextFor(t, d), bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return cmd
}

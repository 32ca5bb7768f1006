package queue_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	process.Init()
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// Children of a -race test binary would each sleep 1 s at exit.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	if code == 0 {
		// No child may outlive the run.
		if kids := process.ActiveChildren(); len(kids) > 0 {
			fmt.Fprintf(os.Stderr, "%d child processes still running after the tests\n", len(kids))
			for _, p := range kids {
				p.Kill()
			}
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// ctxT bounds a test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fdCount counts this process's open descriptors.
func fdCount(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

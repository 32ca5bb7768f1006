//go:build linux

package process_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/mpgo/multiprocessing/process"
)

// BenchmarkStartJoin is process start+join of a no-op function (Python:
// Process(target=noop).start(); join()).
func BenchmarkStartJoin(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		p := process.New(noop, struct{}{})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		if err := p.Join(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecSelf is the floor StartJoin is compared with: a bare
// exec.Command re-exec of the same binary that exits at once.
func BenchmarkExecSelf(b *testing.B) {
	for b.Loop() {
		cmd := exec.Command("/proc/self/exe", "-test.run=^$")
		cmd.Env = append(os.Environ(), "MPGO_BENCH_EXIT=1")
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

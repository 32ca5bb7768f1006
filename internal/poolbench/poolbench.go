//go:build linux

// Package poolbench holds the bodies of the pool benchmarks that run the
// same workload on a local pool (package pool) and on a pool across hosts
// (the cluster module): one program, two ways of making the pool, as a
// user moves from one to the other.
package poolbench

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/pool"
)

// Map maps t (an identity task) over n ints on p in a b.Loop and reports
// tasks/s: Python's pool_map_trivial row.
func Map(b *testing.B, p *pool.Pool, t pool.Task[int, int], n int) {
	args := make([]int, n)
	for i := range args {
		args[i] = i
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		res, err := pool.Map(ctx, p, t, args)
		if err != nil || len(res) != n || res[n-1] != n-1 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "tasks/s")
}

// ApplyAsync makes n ApplyAsync calls of t (an identity task) on p, then
// Gets each, in a b.Loop, and reports tasks/s: Python's
// pool_apply_async_trivial row.
func ApplyAsync(b *testing.B, p *pool.Pool, t pool.Task[int, int], n int) {
	ctx := context.Background()
	ars := make([]*pool.AsyncResult[int], n)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for i := range ars {
			ars[i] = pool.ApplyAsync(p, t, i)
		}
		for i, ar := range ars {
			if r, err := ar.Get(ctx); err != nil || r != i {
				b.Fatal(r, err)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "tasks/s")
}

package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/pool"
)

// BenchmarkMapTrivial is Python's pool_map_trivial row: map(identity) over
// 200,000 ints with 2 workers and the default chunk size.
func BenchmarkMapTrivial(b *testing.B) {
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { p.Close(); p.Join(context.Background()) }()
	args := ints(200_000)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		res, err := pool.Map(ctx, p, ident, args)
		if err != nil || len(res) != len(args) || res[len(res)-1] != len(args)-1 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(args))/time.Since(start).Seconds(), "tasks/s")
}

// BenchmarkApplyAsync is Python's pool_apply_async_trivial row: 20,000
// apply_async calls, then get on each.
func BenchmarkApplyAsync(b *testing.B) {
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { p.Close(); p.Join(context.Background()) }()
	ctx := context.Background()
	const n = 20_000
	ars := make([]*pool.AsyncResult[int], n)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for i := range ars {
			ars[i] = pool.ApplyAsync(p, ident, i)
		}
		for i, ar := range ars {
			if r, err := ar.Get(ctx); err != nil || r != i {
				b.Fatal(r, err)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "tasks/s")
}

// BenchmarkStartup is Python's pool_startup row: Pool(2), close, join.
func BenchmarkStartup(b *testing.B) {
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		p, err := pool.New(pool.Workers(2))
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
		if err := p.Join(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/op")
}

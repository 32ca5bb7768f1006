//go:build linux

package pool_test

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/poolbench"
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
	poolbench.Map(b, p, ident, 200_000)
}

// BenchmarkApplyAsync is Python's pool_apply_async_trivial row: 20,000
// apply_async calls, then get on each.
func BenchmarkApplyAsync(b *testing.B) {
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { p.Close(); p.Join(context.Background()) }()
	poolbench.ApplyAsync(b, p, ident, 20_000)
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

// perCall times each call of f on a warm pool of two workers (warmed as
// Python's row is, by a map of 1,000 items) and reports the median rate of
// one call, in tasks/s: what Python's pool_map_trivial row measures (the
// median of separate p.map calls of 200,000 items). Unlike a b.Loop rate,
// every call pays its own start-up and its own tail.
func perCall(b *testing.B, f func(ctx context.Context, p *pool.Pool, args []int) error) {
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { p.Close(); p.Join(context.Background()) }()
	ctx := context.Background()
	if _, err := pool.Map(ctx, p, ident, ints(1000)); err != nil {
		b.Fatal(err)
	}
	args := ints(200_000)
	var rates []float64
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := f(ctx, p, args); err != nil {
			b.Fatal(err)
		}
		rates = append(rates, float64(len(args))/time.Since(start).Seconds())
	}
	slices.Sort(rates)
	b.ReportMetric(rates[len(rates)/2], "tasks/s")
}

// BenchmarkMapPerCall: one Map of 200,000 ints at a time (Python's
// pool_map_trivial, call by call).
func BenchmarkMapPerCall(b *testing.B) {
	perCall(b, func(ctx context.Context, p *pool.Pool, args []int) error {
		res, err := pool.Map(ctx, p, ident, args)
		if err == nil && (len(res) != len(args) || res[len(res)-1] != len(args)-1) {
			err = fmt.Errorf("wrong results")
		}
		return err
	})
}

func iterCall(it iter.Seq2[int, error], n int) error {
	k := 0
	for _, err := range it {
		if err != nil {
			return err
		}
		k++
	}
	if k != n {
		return fmt.Errorf("%d results for %d arguments", k, n)
	}
	return nil
}

// BenchmarkImapPerCall: BenchmarkMapPerCall with Imap.
func BenchmarkImapPerCall(b *testing.B) {
	perCall(b, func(ctx context.Context, p *pool.Pool, args []int) error {
		return iterCall(pool.Imap(ctx, p, ident, args), len(args))
	})
}

// BenchmarkImapUnorderedPerCall: BenchmarkMapPerCall with ImapUnordered.
func BenchmarkImapUnorderedPerCall(b *testing.B) {
	perCall(b, func(ctx context.Context, p *pool.Pool, args []int) error {
		return iterCall(pool.ImapUnordered(ctx, p, ident, args), len(args))
	})
}

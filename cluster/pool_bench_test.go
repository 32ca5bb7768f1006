//go:build linux

package cluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/poolbench"
	"github.com/mpgo/multiprocessing/pool"
)

var ident = pool.Register("cluster.test.ident", func(ctx context.Context, x int) (int, error) { return x, nil })

// benchPool starts a server, two host processes of one worker each, and a
// pool across them.
func benchPool(b *testing.B, name string) *pool.Pool {
	s, c := setup(b)
	startHosts(b, s.URL(), name, 2, 1)
	p := openPool(b, c, name, 2)
	b.Cleanup(func() { p.Close(); p.Join(context.Background()) })
	return p
}

// BenchmarkClusterPoolMap is the pool_map_trivial row across hosts: Map of
// a trivial task over 200,000 ints, 2 hosts × 1 worker, embedded server.
func BenchmarkClusterPoolMap(b *testing.B) {
	p := benchPool(b, "benchmap")
	poolbench.Map(b, p, ident, 200_000)
}

// BenchmarkClusterPoolApplyAsync is the pool_apply_async_trivial row across
// hosts: 20,000 ApplyAsync calls, then Get on each.
func BenchmarkClusterPoolApplyAsync(b *testing.B) {
	p := benchPool(b, "benchasync")
	poolbench.ApplyAsync(b, p, ident, 20_000)
}

// BenchmarkClusterPoolApply is one Apply round trip across hosts: caller ->
// server -> host -> worker -> host -> caller. It reports the median.
func BenchmarkClusterPoolApply(b *testing.B) {
	p := benchPool(b, "benchapply")
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if r, err := pool.Apply(ctx, p, ident, i); err != nil || r != i {
			b.Fatal(r, err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

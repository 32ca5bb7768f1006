//go:build linux

package cluster_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/process"
)

func benchServer(b *testing.B) (*cluster.Server, *cluster.Cluster) {
	b.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cluster-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s, err := cluster.Start(ctx, cluster.StoreDir(dir))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	c, err := cluster.Connect(ctx, s.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return s, c
}

// BenchmarkClusterStart is cluster_start: an embedded server with
// JetStream, from Start until it answers (file store in a temporary
// directory).
func BenchmarkClusterStart(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	for range b.N {
		dir, err := os.MkdirTemp("", "cluster-bench-")
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		s, err := cluster.Start(ctx, cluster.StoreDir(dir))
		if err != nil {
			b.Fatal(err)
		}
		c, err := cluster.Connect(ctx, s.URL())
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		b.StopTimer()
		c.Close()
		s.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkClusterRoundTrip is cluster_queue_latency: Put then Get of one
// item through a cluster queue, in one process (the server embedded in
// it); p50 and p99 of the round trips.
func BenchmarkClusterRoundTrip(b *testing.B) {
	ctx := context.Background()
	_, c := benchServer(b)
	q, err := cluster.OpenQueue[int](ctx, c, "rt")
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := q.Put(ctx, i); err != nil {
			b.Fatal(err)
		}
		if v, err := q.Get(ctx); err != nil || v != i {
			b.Fatalf("got %d, %v; want %d", v, err, i)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

type benchProdArg struct {
	URL string
	N   int
}

var benchProducer = process.Register("cluster.bench.producer", func(ctx context.Context, a benchProdArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	q, err := cluster.OpenQueue[int](ctx, c, "tp")
	if err != nil {
		return err
	}
	for i := range a.N {
		if err := q.Put(ctx, i); err != nil {
			return err
		}
	}
	return q.Close()
})

// BenchmarkClusterThroughput1to1 is cluster_queue_throughput_1to1: a
// producer process puts b.N small items, this process gets them.
func BenchmarkClusterThroughput1to1(b *testing.B) {
	ctx := context.Background()
	s, c := benchServer(b)
	q, err := cluster.OpenQueue[int](ctx, c, "tp")
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	n := max(b.N, 1000)
	p := process.New(benchProducer, benchProdArg{URL: s.URL(), N: n})
	b.ResetTimer()
	t0 := time.Now()
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := q.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	if err := p.Join(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "items/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkClusterDictAdd is cluster_dict_add: Add from one client, no
// contention.
func BenchmarkClusterDictAdd(b *testing.B) {
	ctx := context.Background()
	_, c := benchServer(b)
	d, err := cluster.OpenDict[string, int](ctx, c, "add")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		if _, err := d.Add(ctx, "k", 1); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	if v, _, _ := d.Get(ctx, "k"); v != b.N {
		b.Fatalf("sum %d, want %d", v, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
}

//go:build linux

package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
)

// The benchmarks mirror bench/py_mp_bench.py: every process says it is
// ready, waits for "go", and the time runs from "go" until every consumer
// (or the joining producer) is done. Process start-up is not timed.

type benchProdArg struct {
	Q     *queue.Queue[int]
	N     int
	Ready *queue.Simple[int]
	Go    *queue.Simple[int]
}

var benchProducer = process.Register("queue.bench.producer", func(ctx context.Context, a benchProdArg) error {
	if err := a.Ready.Put(ctx, 1); err != nil {
		return err
	}
	if _, err := a.Go.Get(ctx); err != nil {
		return err
	}
	for i := range a.N {
		if err := a.Q.Put(ctx, i); err != nil {
			return err
		}
	}
	return a.Q.Put(ctx, -1) // one stop per producer; #producers == #consumers
})

type benchConsArg struct {
	Q     *queue.Queue[int]
	Ready *queue.Simple[int]
	Go    *queue.Simple[int]
	Done  *queue.Simple[int]
}

var benchConsumer = process.Register("queue.bench.consumer", func(ctx context.Context, a benchConsArg) error {
	if err := a.Ready.Put(ctx, 1); err != nil {
		return err
	}
	if _, err := a.Go.Get(ctx); err != nil {
		return err
	}
	n := 0
	for {
		v, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if v == -1 {
			break
		}
		n++
	}
	return a.Done.Put(ctx, n)
})

// must keeps set-up short; a failure there is a broken benchmark.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func benchThroughput(b *testing.B, nprod, ncons int) {
	ctx := context.Background()
	n := max(b.N/nprod, 1)
	q := must(queue.New[int](0))
	ready := must(queue.NewSimple[int]())
	goq := must(queue.NewSimple[int]())
	done := must(queue.NewSimple[int]())
	defer func() {
		q.Close()
		ready.Close()
		goq.Close()
		done.Close()
	}()
	var procs []*process.Process
	for range nprod {
		procs = append(procs, process.New(benchProducer, benchProdArg{Q: q, N: n, Ready: ready, Go: goq}))
	}
	for range ncons {
		procs = append(procs, process.New(benchConsumer, benchConsArg{Q: q, Ready: ready, Go: goq, Done: done}))
	}
	for _, p := range procs {
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
	}
	for range procs {
		must(ready.Get(ctx))
	}
	b.ResetTimer()
	t0 := time.Now()
	for range procs {
		if err := goq.Put(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	got := 0
	for range ncons {
		got += must(done.Get(ctx))
	}
	el := time.Since(t0)
	b.StopTimer()
	for _, p := range procs {
		if err := p.Join(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if got != n*nprod {
		b.Fatalf("got %d items, want %d", got, n*nprod)
	}
	b.ReportMetric(float64(got)/el.Seconds(), "items/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkThroughput1to1 is queue_throughput_1to1 (Python: 111k items/s).
func BenchmarkThroughput1to1(b *testing.B) { benchThroughput(b, 1, 1) }

// BenchmarkThroughput4to4 is queue_throughput_4to4 (Python: 76k items/s).
func BenchmarkThroughput4to4(b *testing.B) { benchThroughput(b, 4, 4) }

type benchJProdArg struct {
	Q     *queue.Joinable[int]
	N     int
	Ready *queue.Simple[int]
	Go    *queue.Simple[int]
	Done  *queue.Simple[int]
}

var benchJProducer = process.Register("queue.bench.jproducer", func(ctx context.Context, a benchJProdArg) error {
	if err := a.Ready.Put(ctx, 1); err != nil {
		return err
	}
	if _, err := a.Go.Get(ctx); err != nil {
		return err
	}
	for i := range a.N {
		if err := a.Q.Put(ctx, i); err != nil {
			return err
		}
	}
	if err := a.Q.Put(ctx, -1); err != nil {
		return err
	}
	if err := a.Q.Join(ctx); err != nil {
		return err
	}
	return a.Done.Put(ctx, a.N)
})

var benchJConsumer = process.Register("queue.bench.jconsumer", func(ctx context.Context, a benchJProdArg) error {
	if err := a.Ready.Put(ctx, 1); err != nil {
		return err
	}
	if _, err := a.Go.Get(ctx); err != nil {
		return err
	}
	for {
		v, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if err := a.Q.TaskDone(); err != nil {
			return err
		}
		if v == -1 {
			return nil
		}
	}
})

// BenchmarkJoinable1to1 is joinable_queue_throughput_1to1: TaskDone for
// every item, the producer Joins (Python: 87k items/s).
func BenchmarkJoinable1to1(b *testing.B) {
	ctx := context.Background()
	q := must(queue.NewJoinable[int](0))
	ready := must(queue.NewSimple[int]())
	goq := must(queue.NewSimple[int]())
	done := must(queue.NewSimple[int]())
	defer func() {
		q.Close()
		ready.Close()
		goq.Close()
		done.Close()
	}()
	a := benchJProdArg{Q: q, N: b.N, Ready: ready, Go: goq, Done: done}
	procs := []*process.Process{process.New(benchJProducer, a), process.New(benchJConsumer, a)}
	for _, p := range procs {
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
	}
	for range procs {
		must(ready.Get(ctx))
	}
	b.ResetTimer()
	t0 := time.Now()
	for range procs {
		if err := goq.Put(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	got := must(done.Get(ctx))
	el := time.Since(t0)
	b.StopTimer()
	for _, p := range procs {
		if err := p.Join(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(got)/el.Seconds(), "items/s")
	b.ReportMetric(0, "ns/op")
}

type echoArg struct {
	In, Out *queue.Queue[int]
}

var benchEcho = process.Register("queue.bench.echo", func(ctx context.Context, a echoArg) error {
	for {
		v, err := a.In.Get(ctx)
		if err != nil {
			return err
		}
		if v == -1 {
			return nil
		}
		if err := a.Out.Put(ctx, v); err != nil {
			return err
		}
	}
})

// BenchmarkPingPong is queue_latency: Put into one queue, Get the echo from
// another (Python: 108 us; a raw C pipe round trip: 21 us).
func BenchmarkPingPong(b *testing.B) {
	ctx := context.Background()
	in := must(queue.New[int](0))
	out := must(queue.New[int](0))
	defer in.Close()
	defer out.Close()
	p := process.New(benchEcho, echoArg{In: in, Out: out})
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	for i := range 500 { // warm up
		in.Put(ctx, i)
		must(out.Get(ctx))
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		if err := in.Put(ctx, i); err != nil {
			b.Fatal(err)
		}
		if v := must(out.Get(ctx)); v != i {
			b.Fatalf("echo %d, want %d", v, i)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	in.Put(ctx, -1)
	if err := p.Join(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(el.Microseconds())/float64(b.N), "us/roundtrip")
}

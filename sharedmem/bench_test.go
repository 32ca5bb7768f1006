//go:build linux

package sharedmem_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/mpgo/multiprocessing/sharedmem"
)

// must keeps set-up short; a failure there is a broken benchmark.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type startArg struct{ A *sharedmem.Array[float64] }

var noop = process.Register("sharedmem_test.noop", func(ctx context.Context, a startArg) error {
	if a.A != nil {
		a.A.Close()
	}
	return nil
})

func benchStart(b *testing.B, a *sharedmem.Array[float64]) {
	ctx := context.Background()
	for b.Loop() {
		p := process.New(noop, startArg{a})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		if err := p.Join(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartNoArray and BenchmarkStartArray1GiB: what a 1 GiB array
// adds to starting a child (process start+join), which maps it: only a
// descriptor crosses.
func BenchmarkStartNoArray(b *testing.B) { benchStart(b, nil) }

func BenchmarkStartArray1GiB(b *testing.B) {
	a := must(sharedmem.NewArray[float64](1 << 27))
	defer a.Close()
	benchStart(b, a)
}

// sumLen is 256 MiB of float64.
const sumLen = 32 << 20

func fill(s []float64) {
	for i := range s {
		s[i] = float64(i & 1023)
	}
}

func sum(s []float64) float64 {
	// Four accumulators, so that the loop is bound by memory, not by the
	// latency of one chain of additions.
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a += s[i]
		b += s[i+1]
		c += s[i+2]
		d += s[i+3]
	}
	for ; i < len(s); i++ {
		a += s[i]
	}
	return a + b + c + d
}

var sink float64

// BenchmarkSumSlice: the parent sums an ordinary 256 MiB []float64.
func BenchmarkSumSlice(b *testing.B) {
	s := make([]float64, sumLen)
	fill(s)
	b.SetBytes(sumLen * 8)
	for b.Loop() {
		sink = sum(s)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/sum")
}

type sumReply struct {
	D   time.Duration
	Sum float64
}

type sumArg struct {
	A    *sharedmem.Array[float64]
	Conn *pipe.Conn
}

// summer sums the whole array each time it is asked, and answers how long
// the sum itself took.
var summer = process.Register("sharedmem_test.summer", func(ctx context.Context, a sumArg) error {
	defer a.Conn.Close()
	s := a.A.Slice()
	for {
		var n int
		if err := a.Conn.Recv(&n); err != nil || n == 0 {
			return err
		}
		t0 := time.Now()
		total := sum(s)
		if err := a.Conn.Send(sumReply{time.Since(t0), total}); err != nil {
			return err
		}
	}
})

// BenchmarkSumShared2 and BenchmarkSumShared2Concurrent: two worker
// processes each sum the same 256 MiB shared array, one after the other
// (what reading shared memory costs against an ordinary slice, compare
// with BenchmarkSumSlice) or both at once (two cores sharing the memory
// bandwidth); ms/sum is the average time one worker's sum takes.
func BenchmarkSumShared2(b *testing.B) { benchSumShared(b, false) }

func BenchmarkSumShared2Concurrent(b *testing.B) { benchSumShared(b, true) }

func benchSumShared(b *testing.B, concurrent bool) {
	a := must(sharedmem.NewArray[float64](sumLen))
	defer a.Close()
	fill(a.Slice())
	want := sum(a.Slice())
	var conns []*pipe.Conn
	var ps []*process.Process
	for range 2 {
		c1, c2 := must2(pipe.Pipe())
		p := process.New(summer, sumArg{a, c2})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		c2.Close()
		conns, ps = append(conns, c1), append(ps, p)
	}
	var total time.Duration
	recv := func(c *pipe.Conn) {
		var r sumReply
		if err := c.Recv(&r); err != nil {
			b.Fatal(err)
		}
		if r.Sum != want {
			b.Fatalf("a worker summed %v, want %v", r.Sum, want)
		}
		total += r.D
	}
	// A first pass maps every page in each worker (a page fault per
	// 64 KiB): a cost paid once per process, not per sum.
	for _, c := range conns {
		must(0, c.Send(1))
		recv(c)
	}
	total = 0
	b.ResetTimer()
	for b.Loop() {
		for _, c := range conns {
			must(0, c.Send(1))
			if !concurrent {
				recv(c)
			}
		}
		if concurrent {
			for _, c := range conns {
				recv(c)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(2*b.N), "ms/sum")
	for i, c := range conns {
		c.Send(0)
		c.Close()
		ps[i].Join(context.Background())
	}
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// BenchmarkValueAdd: Value.Add uncontended.
func BenchmarkValueAdd(b *testing.B) {
	v := must(sharedmem.NewValue[int64](0))
	defer v.Close()
	for b.Loop() {
		v.Add(1)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
}

// BenchmarkValueAddFloat: Value.Add of a float64 uncontended (a
// compare-and-swap loop on its bits).
func BenchmarkValueAddFloat(b *testing.B) {
	v := must(sharedmem.NewValue[float64](0))
	defer v.Close()
	for b.Loop() {
		v.Add(1)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
}

// The hand-off benchmarks give two worker processes 64 MiB of float64s to
// sum, each half of them: through a shared Array (the parent writes the
// data into it), or through a Queue (the parent writes it into 1 MiB
// chunks and puts them). MB/s is of the data handed over.
const (
	handLen   = 8 << 20
	chunkLen  = 128 << 10
	handBytes = handLen * 8
)

type halfArg struct {
	A    *sharedmem.Array[float64]
	Half int
	Conn *pipe.Conn
}

var halfSummer = process.Register("sharedmem_test.halfSummer", func(ctx context.Context, a halfArg) error {
	defer a.Conn.Close()
	s := a.A.Slice()
	s = s[a.Half*len(s)/2 : (a.Half+1)*len(s)/2]
	for {
		var n int
		if err := a.Conn.Recv(&n); err != nil || n == 0 {
			return err
		}
		if err := a.Conn.Send(sum(s)); err != nil {
			return err
		}
	}
})

func BenchmarkHandOffShared(b *testing.B) {
	a := must(sharedmem.NewArray[float64](handLen))
	defer a.Close()
	var conns []*pipe.Conn
	var ps []*process.Process
	for h := range 2 {
		c1, c2 := must2(pipe.Pipe())
		p := process.New(halfSummer, halfArg{a, h, c2})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		c2.Close()
		conns, ps = append(conns, c1), append(ps, p)
	}
	b.SetBytes(handBytes)
	b.ResetTimer()
	for b.Loop() {
		fill(a.Slice())
		for _, c := range conns {
			if err := c.Send(1); err != nil {
				b.Fatal(err)
			}
		}
		var total float64
		for _, c := range conns {
			var s float64
			if err := c.Recv(&s); err != nil {
				b.Fatal(err)
			}
			total += s
		}
	}
	b.StopTimer()
	for i, c := range conns {
		c.Send(0)
		c.Close()
		ps[i].Join(context.Background())
	}
}

type queueArg struct {
	Q    *queue.Queue[[]float64]
	Conn *pipe.Conn
}

// queueSummer, asked to, sums the chunks it gets until an empty one, and
// answers.
var queueSummer = process.Register("sharedmem_test.queueSummer", func(ctx context.Context, a queueArg) error {
	defer a.Conn.Close()
	for {
		var n int
		if err := a.Conn.Recv(&n); err != nil || n == 0 {
			return err
		}
		var total float64
		for {
			c, err := a.Q.Get(ctx)
			if err != nil {
				return err
			}
			if len(c) == 0 {
				break
			}
			total += sum(c)
		}
		if err := a.Conn.Send(total); err != nil {
			return err
		}
	}
})

func BenchmarkHandOffQueue(b *testing.B) {
	ctx := context.Background()
	q := must(queue.New[[]float64](8))
	defer q.Close()
	var conns []*pipe.Conn
	var ps []*process.Process
	for range 2 {
		c1, c2 := must2(pipe.Pipe())
		p := process.New(queueSummer, queueArg{q, c2})
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		c2.Close()
		conns, ps = append(conns, c1), append(ps, p)
	}
	chunk := make([]float64, chunkLen)
	b.SetBytes(handBytes)
	b.ResetTimer()
	for b.Loop() {
		for _, c := range conns {
			if err := c.Send(1); err != nil {
				b.Fatal(err)
			}
		}
		for range handLen / chunkLen {
			fill(chunk)
			if err := q.Put(ctx, chunk); err != nil {
				b.Fatal(err)
			}
		}
		for range conns {
			if err := q.Put(ctx, []float64{}); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range conns {
			var s float64
			if err := c.Recv(&s); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	for i, c := range conns {
		c.Send(0)
		c.Close()
		ps[i].Join(context.Background())
	}
}

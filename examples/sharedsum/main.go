// Command sharedsum shows what shared memory is for: data too big to copy.
//
// Part one: several worker processes fill a large []float64 and sum it.
// Through a sharedmem.Array each worker writes its part in place and sums
// it there, and the parent sees every element without a copy; through a
// queue.Queue the same numbers are encoded, sent and decoded in chunks.
// Both are timed.
//
// Part two is the ticket sale of examples/ticketsale without a lock: buyers
// take tickets from a sharedmem.Value by compare-and-swap, and exactly the
// stock is sold.
//
//	go run ./examples/sharedsum
//	go run ./examples/sharedsum -n 100000000 -workers 4 -tickets 100000 -buyers 8
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/mpgo/multiprocessing/sharedmem"
)

// value is element i of the data: small integers, so every sum is exact
// and the two ways can be compared for equality.
func value(i int) float64 { return float64(i % 1000) }

// part returns worker w's share [lo, hi) of n elements.
func part(n, workers, w int) (lo, hi int) { return n * w / workers, n * (w + 1) / workers }

type sharedArg struct {
	A          *sharedmem.Array[float64]
	Workers, W int
	Out        *pipe.Conn
}

// fillShared fills the worker's part of the shared array, sums it and
// sends back only the sum.
var fillShared = process.Register("sharedsum.fillShared", func(ctx context.Context, a sharedArg) error {
	defer a.Out.Close()
	s := a.A.Slice()
	lo, hi := part(len(s), a.Workers, a.W)
	total := 0.0
	for i := lo; i < hi; i++ {
		s[i] = value(i)
		total += s[i]
	}
	return a.Out.Send(total)
})

type queueArg struct {
	Q             *queue.Queue[[]float64]
	N, Workers, W int
	Chunk         int
}

// fillQueue makes the same numbers and sends them to the parent in chunks;
// an empty chunk says it is done.
var fillQueue = process.Register("sharedsum.fillQueue", func(ctx context.Context, a queueArg) error {
	lo, hi := part(a.N, a.Workers, a.W)
	buf := make([]float64, 0, a.Chunk)
	for i := lo; i < hi; i++ {
		buf = append(buf, value(i))
		if len(buf) == a.Chunk || i == hi-1 {
			if err := a.Q.Put(ctx, buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return a.Q.Put(ctx, []float64{})
})

type buyerArg struct {
	Stock *sharedmem.Value[int64]
	// Sold and Lost have one slot per buyer, so no two processes write
	// one element.
	Sold, Lost *sharedmem.Array[int64]
	Me         int
	Doors      *lock.Event
}

// buyer takes tickets by compare-and-swap until none are left. Between
// reading the stock and taking a ticket it hesitates, as the buyers of
// examples/ticketsale do: another buyer may take that ticket meanwhile.
// Then the compare-and-swap fails, the buyer counts a lost race and reads
// the stock again: no ticket is sold twice, and none is left unsold.
var buyer = process.Register("sharedsum.buyer", func(ctx context.Context, a buyerArg) error {
	if err := a.Doors.Wait(ctx); err != nil {
		return err
	}
	for {
		left := a.Stock.Load()
		if left <= 0 {
			return nil
		}
		hesitate()
		if a.Stock.CompareAndSwap(left, left-1) {
			a.Sold.Slice()[a.Me]++
		} else {
			a.Lost.Slice()[a.Me]++
		}
	}
})

// hesitate spins a microsecond: the race window.
func hesitate() {
	for t := time.Now(); time.Since(t) < time.Microsecond; {
	}
}

func main() {
	process.Init()
	log.SetFlags(0)
	n := flag.Int("n", 1<<25, "float64 elements (8 bytes each)")
	workers := flag.Int("workers", 4, "worker processes")
	chunk := flag.Int("chunk", 1<<16, "elements per queue item")
	tickets := flag.Int("tickets", 10000, "tickets for sale")
	buyers := flag.Int("buyers", 4, "buyer processes")
	flag.Parse()
	ctx := context.Background()
	if err := sum(ctx, *n, *workers, *chunk); err != nil {
		log.Fatal(err)
	}
	if err := sale(ctx, *tickets, *buyers); err != nil {
		log.Fatal(err)
	}
}

func sum(ctx context.Context, n, workers, chunk int) error {
	want := 0.0
	for i := range n {
		want += value(i)
	}
	fmt.Printf("%d float64s (%d MiB), %d workers\n", n, n*8>>20, workers)

	t0 := time.Now()
	viaShared, err := sumShared(ctx, n, workers)
	if err != nil {
		return err
	}
	dShared := time.Since(t0)
	fmt.Printf("shared Array: sum %.0f in %v\n", viaShared, dShared.Round(time.Millisecond))

	t0 = time.Now()
	viaQueue, err := sumQueue(ctx, n, workers, chunk)
	if err != nil {
		return err
	}
	dQueue := time.Since(t0)
	fmt.Printf("queue.Queue:  sum %.0f in %v\n", viaQueue, dQueue.Round(time.Millisecond))
	if viaShared != want || viaQueue != want {
		return fmt.Errorf("sums differ: shared %v, queue %v, want %v", viaShared, viaQueue, want)
	}
	fmt.Printf("sums agree; shared memory took %.1f× less time\n", dQueue.Seconds()/dShared.Seconds())
	return nil
}

func sumShared(ctx context.Context, n, workers int) (float64, error) {
	a, err := sharedmem.NewArray[float64](n)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	in, out, err := pipe.Simplex()
	if err != nil {
		return 0, err
	}
	defer in.Close()
	var ps []*process.Process
	for w := range workers {
		p := process.New(fillShared, sharedArg{A: a, Workers: workers, W: w, Out: out})
		if err := p.Start(); err != nil {
			out.Close()
			return 0, err
		}
		ps = append(ps, p)
	}
	out.Close()
	total := 0.0
	for range workers {
		var s float64
		if err := in.Recv(&s); err != nil {
			return 0, fmt.Errorf("a worker did not report: %w", err)
		}
		total += s
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return 0, err
		}
	}
	// The workers' writes are in the parent's memory already.
	if s := a.Slice(); s[n-1] != value(n-1) {
		return 0, fmt.Errorf("the parent sees %v as the last element", s[n-1])
	}
	return total, nil
}

func sumQueue(ctx context.Context, n, workers, chunk int) (float64, error) {
	q, err := queue.New[[]float64](2 * workers)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	var ps []*process.Process
	for w := range workers {
		p := process.New(fillQueue, queueArg{Q: q, N: n, Workers: workers, W: w, Chunk: chunk})
		if err := p.Start(); err != nil {
			return 0, err
		}
		ps = append(ps, p)
	}
	total := 0.0
	for done := 0; done < workers; {
		c, err := q.Get(ctx)
		if err != nil {
			return 0, err
		}
		if len(c) == 0 {
			done++
		}
		for _, x := range c {
			total += x
		}
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return 0, err
		}
	}
	return total, nil
}

func sale(ctx context.Context, tickets, buyers int) error {
	stock, err := sharedmem.NewValue(int64(tickets))
	if err != nil {
		return err
	}
	defer stock.Close()
	sold, err := sharedmem.NewArray[int64](buyers)
	if err != nil {
		return err
	}
	defer sold.Close()
	lost, err := sharedmem.NewArray[int64](buyers)
	if err != nil {
		return err
	}
	defer lost.Close()
	doors, err := lock.NewEvent()
	if err != nil {
		return err
	}
	defer doors.Close()
	var ps []*process.Process
	for i := range buyers {
		p := process.New(buyer, buyerArg{Stock: stock, Sold: sold, Lost: lost, Me: i, Doors: doors})
		if err := p.Start(); err != nil {
			return err
		}
		ps = append(ps, p)
	}
	doors.Set() // everyone rushes in at once
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return err
		}
	}
	total := int64(0)
	for _, s := range sold.Slice() {
		total += s
	}
	fmt.Printf("\ntickets: %d, buyers: %d, compare-and-swap, no lock\n", tickets, buyers)
	fmt.Printf("per buyer: %v (races lost: %v)\n", sold.Slice(), lost.Slice())
	fmt.Printf("stock left: %d\n", stock.Load())
	fmt.Printf("sold: %d\n", total)
	return nil
}

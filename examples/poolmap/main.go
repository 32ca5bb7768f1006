// Command poolmap counts the primes below a bound in parallel with a
// process pool, showing a progress line, and then shows the same pool
// surviving a task that kills its worker: that task fails with a
// *pool.WorkerDiedError, every other result arrives, and the pool goes on.
// (Python's multiprocessing.Pool hangs forever in that second part,
// bpo-22393.)
//
//	go run ./examples/poolmap -n 5000000 -workers 4
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"golang.org/x/sys/unix"
)

// Range is the half-open interval [Lo, Hi).
type Range struct{ Lo, Hi int }

func (r Range) String() string { return fmt.Sprintf("[%d, %d)", r.Lo, r.Hi) }

// countPrimes is CPU-bound: trial division of every number in the range.
// Tasks are registered at package level, so that the workers (this same
// binary, re-executed) have them too.
var countPrimes = pool.Register("poolmap.countPrimes", func(ctx context.Context, r Range) (int, error) {
	n := 0
	for x := r.Lo; x < r.Hi; x++ {
		if x&0xfff == 0 && ctx.Err() != nil {
			return 0, ctx.Err() // the caller gave up (Ctrl-C)
		}
		if isPrime(x) {
			n++
		}
	}
	return n, nil
})

// fragile counts like countPrimes, but the range starting at Crash kills
// its worker, as a segfault in a cgo library or the OOM killer would.
var fragile = pool.Register("poolmap.fragile", func(ctx context.Context, a fragileArg) (int, error) {
	if a.R.Lo == a.Crash {
		os.Exit(3)
	}
	n := 0
	for x := a.R.Lo; x < a.R.Hi; x++ {
		if isPrime(x) {
			n++
		}
	}
	return n, nil
})

type fragileArg struct {
	R     Range
	Crash int
}

func isPrime(x int) bool {
	if x < 2 {
		return false
	}
	if x%2 == 0 {
		return x == 2
	}
	for d := 3; d*d <= x; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}

func split(n, parts int) []Range {
	rs := make([]Range, parts)
	for i := range rs {
		rs[i] = Range{n * i / parts, n * (i + 1) / parts}
	}
	return rs
}

// progress returns a pool.Progress callback that shows how far the map
// is on f: one line rewritten in place ("\r") on a terminal, else a line
// at every tenth of the work, so that a log file holds no "\r".
func progress(f *os.File) func(done, total int) {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	tty := err == nil
	shown := 0
	return func(done, total int) {
		switch {
		case tty:
			fmt.Fprintf(f, "\rcounting: %d/%d ranges", done, total)
			if done == total {
				fmt.Fprintln(f)
			}
		case done == total || (done-shown)*10 >= total:
			shown = done
			fmt.Fprintf(f, "counting: %d/%d ranges\n", done, total)
		}
	}
}

func main() {
	process.Init() // first: in a worker this runs the task loop and never returns

	n := flag.Int("n", 2_000_000, "count the primes below n")
	parts := flag.Int("ranges", 40, "split the work into this many ranges")
	workers := flag.Int("workers", process.CPUCount(), "worker processes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *parts, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "poolmap:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, parts, workers int) error {
	start := time.Now()
	p, err := pool.New(pool.Workers(workers))
	if err != nil {
		return err
	}
	defer p.Terminate() // on an early return; a no-op after Close and Join
	fmt.Printf("pool of %d workers started in %v\n", workers, time.Since(start).Round(time.Millisecond))

	// Part 1: a CPU-bound map with a progress line. One range per task:
	// they take long enough that chunks would only unbalance the workers.
	ranges := split(n, parts)
	start = time.Now()
	counts, err := pool.Map(ctx, p, countPrimes, ranges, pool.Chunksize(1),
		pool.Progress(progress(os.Stderr)))
	if err != nil {
		return err
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	fmt.Printf("%d primes below %d (%d ranges in %v)\n", total, n, parts, time.Since(start).Round(time.Millisecond))

	// Part 2: the same pool, and a task that kills its worker.
	small := split(min(n, 80_000), 8)
	crash := small[3].Lo
	args := make([]fragileArg, len(small))
	for i, r := range small {
		args[i] = fragileArg{R: r, Crash: crash}
	}
	fmt.Printf("now one of %d tasks kills its worker:\n", len(args))
	i := 0
	for c, err := range pool.Imap(ctx, p, fragile, args, pool.Chunksize(1)) {
		var died *pool.WorkerDiedError
		switch {
		case errors.As(err, &died):
			fmt.Printf("  range %v: worker died (pid %d, exit code %d); the pool replaced it\n", small[i], died.Pid, died.Code)
		case err != nil:
			return err
		default:
			fmt.Printf("  range %v: %d primes\n", small[i], c)
		}
		i++
	}
	again, err := pool.Apply(ctx, p, countPrimes, Range{0, 100})
	if err != nil {
		return err
	}
	fmt.Printf("the pool goes on: %d primes below 100\n", again)

	p.Close()
	return p.Join(ctx)
}

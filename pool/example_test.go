//go:build linux

package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/mpgo/multiprocessing/process"
)

// Tasks are registered at package level, so that every worker has them.
var (
	cube   = pool.Register("example.cube", func(ctx context.Context, x int) (int, error) { return x * x * x, nil })
	divide = pool.Register("example.divide", func(ctx context.Context, x int) (float64, error) {
		if x == 0 {
			return 0, errors.New("division by zero")
		}
		return 1 / float64(x), nil
	})
	crashy = pool.Register("example.crashy", func(ctx context.Context, x int) (int, error) {
		if x == 3 {
			os.Exit(3) // the worker dies holding this task
		}
		return x * 10, nil
	})
)

func Example() {
	ctx := context.Background()
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { p.Close(); p.Join(ctx) }()

	cubes, err := pool.Map(ctx, p, cube, []int{1, 2, 3, 4, 5})
	fmt.Println(cubes, err)
	// Output: [1 8 27 64 125] <nil>
}

func ExampleImap() {
	ctx := context.Background()
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { p.Close(); p.Join(ctx) }()

	for r, err := range pool.Imap(ctx, p, divide, []int{4, 0, 2}) {
		fmt.Println(r, err)
	}
	// Output:
	// 0.25 <nil>
	// 0 pool: task 1: division by zero
	// 0.5 <nil>
}

func ExampleApplyAsync() {
	ctx := context.Background()
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { p.Close(); p.Join(ctx) }()

	var results []*pool.AsyncResult[int]
	for x := range 4 {
		results = append(results, pool.ApplyAsync(p, cube, x))
	}
	for _, ar := range results {
		fmt.Println(ar.Get(ctx))
	}
	// Output:
	// 0 <nil>
	// 1 <nil>
	// 8 <nil>
	// 27 <nil>
}

// A worker that dies fails the task it was running, and only that one;
// the pool replaces it and goes on.
func ExampleWorkerDiedError() {
	ctx := context.Background()
	p, err := pool.New(pool.Workers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { p.Close(); p.Join(ctx) }()

	for r, err := range pool.Imap(ctx, p, crashy, []int{1, 2, 3, 4, 5}) {
		var died *pool.WorkerDiedError
		if errors.As(err, &died) {
			fmt.Printf("task %d: worker exited with code %d\n", died.Index, died.Code)
			continue
		}
		fmt.Println(r, err)
	}
	// Output:
	// 10 <nil>
	// 20 <nil>
	// task 2: worker exited with code 3
	// 40 <nil>
	// 50 <nil>
}

// Each worker runs the initializer once, before its first task (Python's
// initializer and initargs); tasks then use what it set up.
var (
	greeting    string
	setGreeting = process.Register("example.setGreeting", func(ctx context.Context, g string) error {
		greeting = g
		return nil
	})
	greet = pool.Register("example.greet", func(ctx context.Context, name string) (string, error) {
		return greeting + ", " + name, nil
	})
)

func ExampleInitializer() {
	ctx := context.Background()
	p, err := pool.New(pool.Workers(2), pool.Initializer(setGreeting, "hello"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { p.Close(); p.Join(ctx) }()

	fmt.Println(pool.Map(ctx, p, greet, []string{"ann", "bob"}))
	// Output: [hello, ann hello, bob] <nil>
}

// countingBackend is a pool backend (a driver.Runner) that counts the
// chunks it is given and runs them on a local pool through its Runner. A
// cluster backend sends them to other hosts instead, where the hosts'
// local pools run them through their Runners.
type countingBackend struct {
	driver.Runner
	chunks atomic.Int64
}

func (b *countingBackend) Run(ctx context.Context, c driver.Chunk, deliver func(driver.Result) bool) error {
	b.chunks.Add(1)
	return b.Runner.Run(ctx, c, deliver)
}

func ExampleOpen() {
	ctx := context.Background()
	local, err := pool.New(pool.Workers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	b := &countingBackend{Runner: local.Runner()}
	p, err := pool.Open(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Closing p closes its backend: here, the local pool.
	defer func() { p.Close(); p.Join(ctx); local.Join(ctx) }()

	cubes, err := pool.Map(ctx, p, cube, []int{1, 2, 3, 4, 5}, pool.Chunksize(2))
	fmt.Println(cubes, err, b.chunks.Load(), "chunks")
	// Output: [1 8 27 64 125] <nil> 3 chunks
}

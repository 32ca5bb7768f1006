//go:build linux

package queue_test

import (
	"context"
	"fmt"
	"log"
	"sort"

	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
)

type squareArgs struct {
	In  *queue.Queue[int]
	Out *queue.Queue[int]
}

// squarer takes numbers until a negative one and puts their squares.
var squarer = process.Register("example.squarer", func(ctx context.Context, a squareArgs) error {
	for {
		n, err := a.In.Get(ctx)
		if err != nil {
			return err
		}
		if n < 0 {
			return nil
		}
		if err := a.Out.Put(ctx, n*n); err != nil {
			return err
		}
	}
})

// A worker process takes numbers from one queue and puts their squares into
// another; a negative number is the stop marker.
func Example() {
	ctx := context.Background()
	in, err := queue.New[int](0)
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	out, err := queue.New[int](0)
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()

	p := process.New(squarer, squareArgs{In: in, Out: out})
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	for n := 1; n <= 5; n++ {
		in.Put(ctx, n)
	}
	in.Put(ctx, -1)
	for range 5 {
		sq, err := out.Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(sq, " ")
	}
	fmt.Println()
	if err := p.Join(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: 1 4 9 16 25
}

type doneArgs struct {
	Tasks *queue.Joinable[string]
	Done  *queue.Simple[string]
}

// worker marks every task done after reporting it; it runs until it is
// terminated.
var worker = process.Register("example.worker", func(ctx context.Context, a doneArgs) error {
	for {
		t, err := a.Tasks.Get(ctx)
		if err != nil {
			return err
		}
		if err := a.Done.Put(ctx, "did "+t); err != nil {
			return err
		}
		if err := a.Tasks.TaskDone(); err != nil {
			return err
		}
	}
})

// Daemon workers mark each task done; Join returns once all are.
func ExampleJoinable() {
	ctx := context.Background()
	tasks, err := queue.NewJoinable[string](0)
	if err != nil {
		log.Fatal(err)
	}
	defer tasks.Close()
	done, err := queue.NewSimple[string]()
	if err != nil {
		log.Fatal(err)
	}
	defer done.Close()
	for range 2 {
		p := process.New(worker, doneArgs{Tasks: tasks, Done: done}, process.WithDaemon())
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
	}
	for _, t := range []string{"wash", "dry", "fold"} {
		tasks.Put(ctx, t)
	}
	if err := tasks.Join(ctx); err != nil {
		log.Fatal(err)
	}
	var did []string
	for !done.Empty() {
		s, _ := done.Get(ctx)
		did = append(did, s)
	}
	sort.Strings(did)
	fmt.Println(did)
	process.Shutdown(ctx) // terminates the daemon workers
	// Output: [did dry did fold did wash]
}

// TryPut and TryGet never wait: they report ErrFull and ErrEmpty.
func ExampleQueue_TryPut() {
	q, err := queue.New[string](1)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	fmt.Println(q.TryPut("a"))
	fmt.Println(q.TryPut("b"))
	fmt.Println(q.Len(), q.Full())
	v, err := q.TryGet()
	fmt.Println(v, err)
	_, err = q.TryGet()
	fmt.Println(err)
	// Output:
	// <nil>
	// queue: full
	// 1 true
	// a <nil>
	// queue: empty
}

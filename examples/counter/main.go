// Command counter is the manager lesson: a count of 100 in a shared dict,
// and 100 processes that each take one off. Done three ways, side by side:
//
//   - Get, then Set, with no lock: processes read the same value before
//     any of them writes it back, so updates are lost and the count ends
//     above zero (Python's `d[k] -= 1` on a manager dict does the same);
//   - the same inside a manager Lock: correct, and serial;
//   - Dict.Add(-1), which the server does atomically: correct, and the
//     fastest, with no lock at all.
//
// Run it with
//
//	go run ./examples/counter
//	go run ./examples/counter -procs 20 -think 5ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
)

type takerArg struct {
	Count  *manager.Dict[string, int]
	Lock   *manager.Lock // the locked way only
	Atomic bool
	Ready  *manager.Semaphore // each taker releases it once it waits at the gate
	Gate   *manager.Event     // opened when every taker is ready
	Done   *manager.Semaphore // each taker releases it when it has taken one
	Think  time.Duration      // work between reading and writing the count
}

// take runs in each child process: the proxies arrived as its argument.
var take = process.Register("counter.take", func(ctx context.Context, a takerArg) error {
	if err := a.Ready.Release(ctx); err != nil {
		return err
	}
	if err := a.Gate.Wait(ctx); err != nil { // everyone starts at once
		return err
	}
	if err := takeOne(ctx, a); err != nil {
		return err
	}
	return a.Done.Release(ctx)
})

func takeOne(ctx context.Context, a takerArg) error {
	if a.Atomic {
		_, err := a.Count.Add(ctx, "count", -1)
		return err
	}
	if a.Lock != nil {
		if err := a.Lock.Acquire(ctx); err != nil && !errors.Is(err, manager.ErrOwnerDied) {
			return err
		}
		defer a.Lock.Release(ctx)
	}
	n, _, err := a.Count.Get(ctx, "count")
	if err != nil {
		return err
	}
	time.Sleep(a.Think)
	return a.Count.Set(ctx, "count", n-1)
}

// round sets the count, starts the takers, opens the gate when all are
// waiting, and returns the final count and the time from the gate until
// every taker has taken its one (process start and exit are left out:
// they cost the same in every way).
func round(ctx context.Context, m *manager.Manager, procs int, arg takerArg) (int, time.Duration, error) {
	var err error
	if arg.Ready, err = manager.NewSemaphore(ctx, m, 0); err != nil {
		return 0, 0, err
	}
	if arg.Gate, err = manager.NewEvent(ctx, m); err != nil {
		return 0, 0, err
	}
	if arg.Done, err = manager.NewSemaphore(ctx, m, 0); err != nil {
		return 0, 0, err
	}
	if err := arg.Count.Set(ctx, "count", procs); err != nil {
		return 0, 0, err
	}
	ps := make([]*process.Process, procs)
	for i := range ps {
		ps[i] = process.New(take, arg)
		if err := ps[i].Start(); err != nil {
			return 0, 0, err
		}
	}
	for range procs {
		if err := arg.Ready.Acquire(ctx); err != nil {
			return 0, 0, err
		}
	}
	begin := time.Now()
	if err := arg.Gate.Set(ctx); err != nil {
		return 0, 0, err
	}
	for range procs {
		if err := arg.Done.Acquire(ctx); err != nil {
			return 0, 0, err
		}
	}
	took := time.Since(begin)
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return 0, 0, err
		}
	}
	n, _, err := arg.Count.Get(ctx, "count")
	return n, took, err
}

func main() {
	process.Init()
	log.SetFlags(0)
	procs := flag.Int("procs", 100, "processes, and the starting count")
	think := flag.Duration("think", time.Millisecond, "work between Get and Set")
	flag.Parse()

	ctx := context.Background()
	m, err := manager.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	count, err := manager.NewDict[string, int](ctx, m)
	if err != nil {
		log.Fatal(err)
	}
	l, err := manager.NewLock(ctx, m)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Printf("%d processes each take one off a count of %d:\n", *procs, *procs)
	ways := []struct {
		name string
		arg  takerArg
	}{
		{"Get, then Set, no lock:", takerArg{Count: count, Think: *think}},
		{"Get, then Set, in a Lock:", takerArg{Count: count, Lock: l, Think: *think}},
		{"atomic Add(-1):", takerArg{Count: count, Atomic: true}},
	}
	for _, w := range ways {
		n, took, err := round(ctx, m, *procs, w.arg)
		if err != nil {
			log.Fatal(err)
		}
		lost := ""
		if n != 0 {
			lost = fmt.Sprintf("(%d updates lost)", n)
		}
		fmt.Printf("  %-26s final count %3d  %-19s %8.1f ms\n", w.name, n, lost, float64(took.Microseconds())/1000)
	}
	if err := m.Close(); err != nil {
		log.Fatal(err)
	}
}

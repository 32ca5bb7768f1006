//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
)

type fileCounter struct {
	L    *lock.Lock
	Path string
	N    int
}

// addToFile adds 1 to the number in a file, N times, each a read, a parse
// and a write: without the lock, processes overwrite each other's updates.
var addToFile = process.Register("example.add-to-file", func(ctx context.Context, a fileCounter) error {
	for range a.N {
		if err := a.L.Acquire(ctx); err != nil && !errors.Is(err, lock.ErrOwnerDied) {
			return err
		}
		b, err := os.ReadFile(a.Path)
		if err == nil {
			var n int
			n, err = strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				err = os.WriteFile(a.Path, []byte(strconv.Itoa(n+1)), 0o644)
			}
		}
		if rerr := a.L.Release(); err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
	}
	return nil
})

// Three processes update one file under a Lock; no update is lost.
func ExampleLock() {
	dir, _ := os.MkdirTemp("", "lock-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "count")
	os.WriteFile(path, []byte("0"), 0o644)

	l, err := lock.NewLock()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	var ps []*process.Process
	for range 3 {
		p := process.New(addToFile, fileCounter{L: l, Path: path, N: 100})
		if err := p.Start(); err != nil {
			panic(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Join(context.Background()); err != nil {
			panic(err)
		}
	}
	b, _ := os.ReadFile(path)
	fmt.Println("count:", string(b))
	// Output: count: 300
}

type grabArg struct {
	L    *lock.Lock
	Held *lock.Event
}

// grabAndHang takes the lock and never lets go.
var grabAndHang = process.Register("example.grab", func(ctx context.Context, a grabArg) error {
	a.L.Lock()
	a.Held.Set()
	<-ctx.Done()
	return nil
})

// A process that is killed while holding the Lock does not take it to the
// grave: the next Acquire gets it, with ErrOwnerDied.
func ExampleLock_ownerDied() {
	l, _ := lock.NewLock()
	defer l.Close()
	held, _ := lock.NewEvent()
	defer held.Close()

	p := process.New(grabAndHang, grabArg{L: l, Held: held})
	if err := p.Start(); err != nil {
		panic(err)
	}
	held.Wait(context.Background())
	p.Kill()
	p.Join(context.Background())
	code, _ := p.ExitCode()
	fmt.Println("child exit code:", code)

	err := l.Acquire(context.Background())
	fmt.Println("acquired after the holder died:", errors.Is(err, lock.ErrOwnerDied))
	l.Release()
	// Output:
	// child exit code: -9
	// acquired after the holder died: true
}

var setEvent = process.Register("example.set", func(ctx context.Context, e *lock.Event) error {
	return e.Set()
})

// An Event set in a child wakes the parent.
func ExampleEvent() {
	e, _ := lock.NewEvent()
	defer e.Close()
	p := process.New(setEvent, e)
	if err := p.Start(); err != nil {
		panic(err)
	}
	if err := e.Wait(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("set:", e.IsSet())
	p.Join(context.Background())
	// Output: set: true
}

type phaseArg struct {
	B    *lock.Barrier
	Name string
}

// phases runs three phases in lockstep with the other parties; the party
// that gets index 0 reports each phase once.
var phases = process.Register("example.phases", func(ctx context.Context, a phaseArg) error {
	for phase := 1; phase <= 3; phase++ {
		i, err := a.B.Wait(ctx)
		if err != nil {
			return err
		}
		if i == 0 {
			fmt.Println("phase", phase, "done by all")
		}
	}
	return nil
})

// Three processes move through phases together.
func ExampleBarrier() {
	b, _ := lock.NewBarrier(3)
	defer b.Close()
	var ps []*process.Process
	for i := range 3 {
		p := process.New(phases, phaseArg{B: b, Name: strconv.Itoa(i)})
		if err := p.Start(); err != nil {
			panic(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.Join(context.Background())
	}
	// Output:
	// phase 1 done by all
	// phase 2 done by all
	// phase 3 done by all
}

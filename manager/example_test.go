//go:build linux

package manager_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/process"
)

// takeOne runs in each child: the proxy arrived as its argument.
var takeOne = process.Register("example.takeOne", func(ctx context.Context, d *manager.Dict[string, int]) error {
	_, err := d.Add(ctx, "count", -1) // atomic on the server: no lost update
	return err
})

// Ten processes each take one off a shared count.
func Example() {
	ctx := context.Background()
	m, err := manager.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	d, err := manager.NewDict[string, int](ctx, m)
	if err != nil {
		log.Fatal(err)
	}
	d.Set(ctx, "count", 10)
	var ps []*process.Process
	for range 10 {
		p := process.New(takeOne, d)
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			log.Fatal(err)
		}
	}
	n, _, _ := d.Get(ctx, "count")
	fmt.Println("count:", n)
	// Output: count: 0
}

type job struct {
	Tasks   *manager.Queue[string]
	Results *manager.List[string]
}

var shout = process.Register("example.shout", func(ctx context.Context, j job) error {
	for {
		s, err := j.Tasks.Get(ctx)
		if err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		if err := j.Results.Append(ctx, strings.ToUpper(s)); err != nil {
			return err
		}
	}
})

// A queue and a list shared with a worker process.
func ExampleNewQueue() {
	ctx := context.Background()
	m, err := manager.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	tasks, _ := manager.NewQueue[string](ctx, m, 0)
	results, _ := manager.NewList[string](ctx, m)
	p := process.New(shout, job{Tasks: tasks, Results: results})
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c", ""} {
		tasks.Put(ctx, s)
	}
	if err := p.Join(ctx); err != nil {
		log.Fatal(err)
	}
	all, _ := results.Slice(ctx)
	fmt.Println(all)
	// Output: [A B C]
}

// Two connections that share nothing but the address find the same named
// dict.
func ExampleNamed() {
	ctx := context.Background()
	m, err := manager.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	a, _ := manager.NewDict[string, string](ctx, m, manager.Named("config"))
	a.Set(ctx, "mode", "fast")

	network, addr := m.Address()
	other, err := manager.Connect(ctx, network, addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	b, _ := manager.NewDict[string, string](ctx, other, manager.Named("config"))
	mode, _, _ := b.Get(ctx, "mode")
	fmt.Println(mode)
	// Output: fast
}

// tally is a user type whose exported methods the server serves.
type tally struct{ seen map[string]int }

func (t *tally) Add(word string) int { t.seen[word]++; return t.seen[word] }

func init() {
	manager.Register("example.tally", func() any { return &tally{seen: map[string]int{}} })
}

// A registered type behind a generic proxy.
func ExampleRegister() {
	ctx := context.Background()
	m, err := manager.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	t, err := manager.NewObject(ctx, m, "example.tally")
	if err != nil {
		log.Fatal(err)
	}
	var n int
	for _, w := range []string{"go", "py", "go"} {
		t.Call(ctx, "Add", &n, w)
	}
	fmt.Println("go seen", n, "times")
	// Output: go seen 2 times
}

// A server in this process; clients connect by address (with TCP and a
// key, from other machines too).
func ExampleServe() {
	ctx, stop := context.WithCancel(context.Background())
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ready := make(chan string)
	done := make(chan error)
	go func() {
		done <- manager.Serve(ctx, "unix", filepath.Join(dir, "sock"), nil,
			manager.WithListening(func(_, addr string) { ready <- addr }))
	}()
	m, err := manager.Connect(ctx, "unix", <-ready, nil)
	if err != nil {
		log.Fatal(err)
	}
	v, _ := manager.NewValue(ctx, m, 1.5)
	x, _ := v.Add(ctx, 1)
	fmt.Println(x)
	m.Close()
	stop()
	fmt.Println(<-done)
	// Output:
	// 2.5
	// manager: serve: context canceled
}

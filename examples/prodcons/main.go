// Command prodcons is the producer/consumer lesson with queues, in both of
// Python's shapes:
//
//   - stop markers (the default): a producer process puts the items, then
//     one stop marker per consumer; each consumer process takes items until
//     it takes a stop marker, and reports what it took.
//   - -joinable: daemon consumer processes take items forever and mark each
//     one done (TaskDone); the producer process Joins the queue, which
//     returns once every item has been processed. The consumers are then
//     terminated.
//
// The program prints what each consumer took and a summary, and exits with
// status 1 unless every item was consumed exactly once.
//
//	go run ./examples/prodcons -consumers 4 -items 100
//	go run ./examples/prodcons -joinable
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
)

// Item is what travels through the queue.
type Item struct {
	N    int
	Stop bool // the stop marker
}

// Report is a consumer's account of what it took.
type Report struct {
	Consumer string
	Items    []int
}

type producerArg struct {
	Items, Stops int
	Q            *queue.Queue[Item]    // stop-marker mode
	J            *queue.Joinable[Item] // joinable mode
}

// produce puts the items; with a Joinable it then waits until every one of
// them has been processed.
var produce = process.Register("prodcons.produce", func(ctx context.Context, a producerArg) error {
	put := func(it Item) error {
		if a.J != nil {
			return a.J.Put(ctx, it)
		}
		return a.Q.Put(ctx, it)
	}
	for n := 1; n <= a.Items; n++ {
		if err := put(Item{N: n}); err != nil {
			return err
		}
	}
	if a.J != nil {
		if err := a.J.Join(ctx); err != nil {
			return err
		}
		fmt.Printf("producer: all %d items processed (Join returned)\n", a.Items)
		return nil
	}
	for range a.Stops {
		if err := put(Item{Stop: true}); err != nil {
			return err
		}
	}
	return nil
})

type consumerArg struct {
	Q       *queue.Queue[Item]
	J       *queue.Joinable[Item]
	Reports *queue.Simple[Report]
	Work    time.Duration
}

// consumeUntilStop takes items until a stop marker, then reports them.
var consumeUntilStop = process.Register("prodcons.consume", func(ctx context.Context, a consumerArg) error {
	var took []int
	for {
		it, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if it.Stop {
			break
		}
		time.Sleep(a.Work) // the work
		took = append(took, it.N)
	}
	return a.Reports.Put(ctx, Report{Consumer: process.Current().Name, Items: took})
})

// consumeForever is a daemon consumer: it reports each item (before marking
// it done, so that the report is in when Join returns) until terminated.
var consumeForever = process.Register("prodcons.daemon", func(ctx context.Context, a consumerArg) error {
	me := process.Current().Name
	for {
		it, err := a.J.Get(ctx)
		if err != nil {
			return err
		}
		time.Sleep(a.Work)
		if err := a.Reports.Put(ctx, Report{Consumer: me, Items: []int{it.N}}); err != nil {
			return err
		}
		if err := a.J.TaskDone(); err != nil {
			return err
		}
	}
})

// config is what the flags ask for.
type config struct {
	consumers, items, maxsize int
	joinable                  bool
	work                      time.Duration
}

func (c config) mode() string {
	if c.joinable {
		return "joinable"
	}
	return "stop markers"
}

func parseFlags() config {
	var c config
	flag.IntVar(&c.consumers, "consumers", 4, "consumer processes")
	flag.IntVar(&c.items, "items", 100, "items to produce")
	flag.BoolVar(&c.joinable, "joinable", false, "daemon consumers with TaskDone, the producer Joins")
	flag.IntVar(&c.maxsize, "maxsize", 0, "queue bound (0: unbounded)")
	flag.DurationVar(&c.work, "work", time.Millisecond, "time a consumer spends on an item")
	flag.Parse()
	if c.consumers < 1 || c.items < 0 {
		log.Fatal("prodcons: need at least one consumer and no negative item count")
	}
	return c
}

func main() {
	process.Init()
	log.SetFlags(0)
	cfg := parseFlags()
	ctx := context.Background()

	reports, err := queue.NewSimple[Report]()
	if err != nil {
		log.Fatal(err)
	}
	defer reports.Close()
	pa, ca, closeQueue := newWorkQueue(cfg, reports)
	defer closeQueue()

	cons := startConsumers(cfg, ca)
	prod := process.New(produce, pa, process.WithName("producer"))
	if err := prod.Start(); err != nil {
		log.Fatal(err)
	}
	took := collectReports(ctx, cfg, reports)
	if err := prod.Join(ctx); err != nil {
		log.Fatal(err)
	}
	stopConsumers(ctx, cfg, cons)
	if !summarize(cfg, cons, took) {
		os.Exit(1)
	}
}

// newWorkQueue makes the queue of the mode asked for and the arguments that
// carry it to the producer and the consumers.
func newWorkQueue(cfg config, reports *queue.Simple[Report]) (producerArg, consumerArg, func() error) {
	if cfg.joinable {
		j, err := queue.NewJoinable[Item](cfg.maxsize)
		if err != nil {
			log.Fatal(err)
		}
		return producerArg{Items: cfg.items, J: j}, consumerArg{J: j, Reports: reports, Work: cfg.work}, j.Close
	}
	q, err := queue.New[Item](cfg.maxsize)
	if err != nil {
		log.Fatal(err)
	}
	return producerArg{Items: cfg.items, Stops: cfg.consumers, Q: q}, consumerArg{Q: q, Reports: reports, Work: cfg.work}, q.Close
}

func startConsumers(cfg config, ca consumerArg) []*process.Process {
	var cons []*process.Process
	for i := 1; i <= cfg.consumers; i++ {
		name := process.WithName(fmt.Sprintf("consumer-%d", i))
		var p *process.Process
		if cfg.joinable {
			p = process.New(consumeForever, ca, name, process.WithDaemon())
		} else {
			p = process.New(consumeUntilStop, ca, name)
		}
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		cons = append(cons, p)
	}
	return cons
}

// collectReports reads the reports while the others work: stop-marker
// consumers send one each at the end, daemon consumers one per item.
func collectReports(ctx context.Context, cfg config, reports *queue.Simple[Report]) map[string][]int {
	took := map[string][]int{}
	want := cfg.consumers
	if cfg.joinable {
		want = cfg.items
	}
	for range want {
		r, err := reports.Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		took[r.Consumer] = append(took[r.Consumer], r.Items...)
	}
	return took
}

func stopConsumers(ctx context.Context, cfg config, cons []*process.Process) {
	if cfg.joinable {
		// Daemon consumers never return: stop them, as Python does at exit.
		if err := process.Shutdown(ctx); err != nil {
			log.Fatal(err)
		}
		return
	}
	for _, p := range cons {
		if err := p.Join(ctx); err != nil {
			log.Fatal(err)
		}
	}
}

// summarize prints what each consumer took and whether every item was
// consumed exactly once.
func summarize(cfg config, cons []*process.Process, took map[string][]int) bool {
	seen := make(map[int]int)
	for _, p := range cons {
		nums := took[p.Name()]
		for _, n := range nums {
			seen[n]++
		}
		fmt.Printf("%s took %d items: %s\n", p.Name(), len(nums), list(nums))
	}
	var missing, twice []int
	for n := 1; n <= cfg.items; n++ {
		switch seen[n] {
		case 0:
			missing = append(missing, n)
		case 1:
		default:
			twice = append(twice, n)
		}
	}
	fmt.Printf("summary (%s): %d items, %d consumers, %d consumed", cfg.mode(), cfg.items, cfg.consumers, len(seen))
	if len(missing)+len(twice) > 0 {
		fmt.Printf(", missing %v, more than once %v\n", missing, twice)
		return false
	}
	fmt.Println(", each exactly once")
	return true
}

// list prints a short sorted list of numbers.
func list(nums []int) string {
	s := slices.Sorted(slices.Values(nums))
	parts := make([]string, 0, min(len(s), 12))
	for i, n := range s {
		if i == 12 {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(s)-12))
			break
		}
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, " ")
}

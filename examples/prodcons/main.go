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

func main() {
	process.Init()
	log.SetFlags(0)
	consumers := flag.Int("consumers", 4, "consumer processes")
	items := flag.Int("items", 100, "items to produce")
	joinable := flag.Bool("joinable", false, "daemon consumers with TaskDone, the producer Joins")
	maxsize := flag.Int("maxsize", 0, "queue bound (0: unbounded)")
	work := flag.Duration("work", time.Millisecond, "time a consumer spends on an item")
	flag.Parse()
	if *consumers < 1 || *items < 0 {
		log.Fatal("prodcons: need at least one consumer and no negative item count")
	}
	ctx := context.Background()

	reports, err := queue.NewSimple[Report]()
	if err != nil {
		log.Fatal(err)
	}
	defer reports.Close()
	var pa producerArg
	var ca consumerArg
	if *joinable {
		j, err := queue.NewJoinable[Item](*maxsize)
		if err != nil {
			log.Fatal(err)
		}
		defer j.Close()
		pa = producerArg{Items: *items, J: j}
		ca = consumerArg{J: j, Reports: reports, Work: *work}
	} else {
		q, err := queue.New[Item](*maxsize)
		if err != nil {
			log.Fatal(err)
		}
		defer q.Close()
		pa = producerArg{Items: *items, Stops: *consumers, Q: q}
		ca = consumerArg{Q: q, Reports: reports, Work: *work}
	}

	var cons []*process.Process
	for i := 1; i <= *consumers; i++ {
		var p *process.Process
		name := process.WithName(fmt.Sprintf("consumer-%d", i))
		if *joinable {
			p = process.New(consumeForever, ca, name, process.WithDaemon())
		} else {
			p = process.New(consumeUntilStop, ca, name)
		}
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		cons = append(cons, p)
	}
	prod := process.New(produce, pa, process.WithName("producer"))
	if err := prod.Start(); err != nil {
		log.Fatal(err)
	}

	// Collect the reports while the others work: stop-marker consumers send
	// one each at the end, daemon consumers one per item.
	took := map[string][]int{}
	want := *consumers
	if *joinable {
		want = *items
	}
	for range want {
		r, err := reports.Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		took[r.Consumer] = append(took[r.Consumer], r.Items...)
	}
	if err := prod.Join(ctx); err != nil {
		log.Fatal(err)
	}
	if *joinable {
		// Daemon consumers never return: stop them, as Python does at exit.
		if err := process.Shutdown(ctx); err != nil {
			log.Fatal(err)
		}
	} else {
		for _, p := range cons {
			if err := p.Join(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}

	seen := make(map[int]int)
	for _, p := range cons {
		nums := took[p.Name()]
		for _, n := range nums {
			seen[n]++
		}
		fmt.Printf("%s took %d items: %s\n", p.Name(), len(nums), list(nums))
	}
	var missing, twice []int
	for n := 1; n <= *items; n++ {
		switch seen[n] {
		case 0:
			missing = append(missing, n)
		case 1:
		default:
			twice = append(twice, n)
		}
	}
	mode := "stop markers"
	if *joinable {
		mode = "joinable"
	}
	fmt.Printf("summary (%s): %d items, %d consumers, %d consumed", mode, *items, *consumers, len(seen))
	if len(missing)+len(twice) > 0 {
		fmt.Printf(", missing %v, more than once %v\n", missing, twice)
		os.Exit(1)
	}
	fmt.Println(", each exactly once")
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

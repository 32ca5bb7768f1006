// Command ticketsale is the lock lesson: a ticket file {"count":1}, and
// buyer processes that each read it, think a little, take a ticket and
// write the file back.
//
// Without a lock every buyer reads the same count before anyone writes, so
// every one of them "gets" the last ticket; with a lock.Lock around the
// read-think-write, exactly as many tickets are sold as there were.
//
//	go run ./examples/ticketsale -lock=false   # oversold
//	go run ./examples/ticketsale -buyers 8 -tickets 3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
)

type ticketFile struct {
	Count int `json:"count"`
}

type buyerArg struct {
	Name  string
	Path  string
	Lock  *lock.Lock // nil: no lock
	Doors *lock.Event
	Think time.Duration
	Out   *pipe.Conn // where the buyer reports whether it got a ticket
}

var buyer = process.Register("ticketsale.buyer", func(ctx context.Context, a buyerArg) error {
	defer a.Out.Close()
	if err := a.Doors.Wait(ctx); err != nil { // everyone rushes in at once
		return err
	}
	if a.Lock != nil {
		if err := a.Lock.Acquire(ctx); err != nil && !errors.Is(err, lock.ErrOwnerDied) {
			return err
		}
		defer a.Lock.Release()
	}
	got, err := buy(a.Path, a.Think)
	if err != nil {
		return err
	}
	if got {
		fmt.Printf("%s: got a ticket\n", a.Name)
	} else {
		fmt.Printf("%s: sold out\n", a.Name)
	}
	return a.Out.Send(got)
})

// buy reads the count, thinks, and takes a ticket if there was one.
func buy(path string, think time.Duration) (bool, error) {
	var t ticketFile
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return false, err
	}
	if t.Count <= 0 {
		return false, nil
	}
	time.Sleep(think) // the customer hesitates; the race window
	t.Count--
	b, _ = json.Marshal(t)
	// Write a new file and rename it over the old one, so a reader sees
	// the old count or the new one, never a half-written file: the race
	// this program shows is the lost update, not a torn write.
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

func main() {
	process.Init()
	log.SetFlags(0)
	buyers := flag.Int("buyers", 4, "number of buyer processes")
	tickets := flag.Int("tickets", 1, "tickets for sale")
	useLock := flag.Bool("lock", true, "take a lock.Lock around read-think-write")
	think := flag.Duration("think", 50*time.Millisecond, "how long a buyer hesitates between reading and writing")
	flag.Parse()
	if err := run(*buyers, *tickets, *useLock, *think); err != nil {
		log.Fatal(err)
	}
}

func run(buyers, tickets int, useLock bool, think time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ticketsale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tickets.json")
	b, _ := json.Marshal(ticketFile{Count: tickets})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}

	var l *lock.Lock
	if useLock {
		if l, err = lock.NewLock(); err != nil {
			return err
		}
		defer l.Close()
	}
	doors, err := lock.NewEvent()
	if err != nil {
		return err
	}
	defer doors.Close()
	results, out, err := pipe.Simplex()
	if err != nil {
		return err
	}
	defer results.Close()

	var ps []*process.Process
	for i := range buyers {
		p := process.New(buyer, buyerArg{
			Name: fmt.Sprintf("buyer %d", i+1), Path: path, Lock: l, Doors: doors, Think: think, Out: out,
		})
		if err := p.Start(); err != nil {
			return err
		}
		ps = append(ps, p)
	}
	out.Close() // the buyers have their own copies
	doors.Set()

	sold := 0
	for range buyers {
		var got bool
		if err := results.Recv(&got); err != nil {
			return fmt.Errorf("a buyer did not report: %w", err)
		}
		if got {
			sold++
		}
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return err
		}
	}
	b, err = os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Printf("tickets: %d, buyers: %d, lock: %v\n", tickets, buyers, useLock)
	fmt.Printf("file says: %s\n", b)
	fmt.Printf("sold: %d\n", sold)
	if sold > tickets {
		fmt.Printf("oversold by %d: the buyers raced on the file\n", sold-tickets)
	}
	return nil
}

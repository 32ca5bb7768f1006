// Command sendmail is the join lesson: several processes "send mail" after
// random delays, and "all mail sent" is printed only once every one of them
// has been joined.
//
//	go run ./examples/sendmail -n 5
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"time"

	"github.com/mpgo/multiprocessing/process"
)

type mail struct {
	To    string
	Delay time.Duration
}

// send runs in a child process: one process per mail.
var send = process.Register("sendmail.send", func(ctx context.Context, m mail) error {
	select {
	case <-time.After(m.Delay): // the "network"
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Printf("sent mail to %s (pid %d, after %v)\n", m.To, os.Getpid(), m.Delay)
	return nil
})

func main() {
	process.Init() // first: in a child, this runs send and exits
	n := flag.Int("n", 5, "number of mails")
	maxDelay := flag.Duration("max-delay", 500*time.Millisecond, "longest random delay")
	flag.Parse()
	log.SetFlags(0)
	if *n < 0 || *maxDelay < 0 {
		fmt.Fprintln(os.Stderr, "sendmail: -n and -max-delay must not be negative")
		flag.Usage()
		os.Exit(2)
	}

	procs := make([]*process.Process, *n)
	for i := range procs {
		m := mail{To: fmt.Sprintf("user%d@example.com", i), Delay: rand.N(*maxDelay + 1)}
		procs[i] = process.New(send, m)
		if err := procs[i].Start(); err != nil {
			log.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, p := range procs {
		if err := p.Join(ctx); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("all mail sent")
}

// Command adder is the duplex Pipe lesson: a server process adds the pairs
// of numbers it receives on its end of a pipe and sends back the sums, until
// the other end is closed.
//
//	go run ./examples/adder
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
)

// add serves one end of the pipe in a child process.
var add = process.Register("adder.add", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	for {
		var pair [2]int
		err := c.Recv(&pair)
		if errors.Is(err, io.EOF) {
			return nil // the parent closed its end: done
		}
		if err != nil {
			return err
		}
		if err := c.Send(pair[0] + pair[1]); err != nil {
			return err
		}
	}
})

func main() {
	process.Init()
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `usage: adder

Starts a child process that adds the pairs of numbers it receives on its
end of a pipe, sends it four pairs, prints the sums, and closes the pipe,
which ends the child. It takes no arguments.
`)
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	mine, theirs, err := pipe.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	p := process.New(add, theirs)
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	theirs.Close() // the child has its own copy now

	for _, pair := range [][2]int{{1, 2}, {3, 4}, {40, 2}, {-7, 7}} {
		if err := mine.Send(pair); err != nil {
			log.Fatal(err)
		}
		var sum int
		if err := mine.Recv(&sum); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d + %d = %d\n", pair[0], pair[1], sum)
	}
	mine.Close() // EOF for the adder
	if err := p.Join(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("adder exited cleanly")
}

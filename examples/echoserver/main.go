// Command echoserver is the process-per-connection lesson: the server
// accepts TCP connections and hands each one to a new child process, which
// upper-cases every line it reads and writes it back. Run bare, it listens
// on a free port, prints it and how to connect, and serves until Ctrl-C.
//
//	go run ./examples/echoserver -addr 127.0.0.1:7777 &
//	go run ./examples/echoserver -client 127.0.0.1:7777 hello world
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/mpgo/multiprocessing/process"
)

// serve handles one connection in its own process. The *net.TCPConn
// travels to the child as a handle: it arrives as a working connection.
var serve = process.Register("echoserver.serve", func(ctx context.Context, c *net.TCPConn) error {
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }() // Interrupt ends the session
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := fmt.Fprintln(c, strings.ToUpper(sc.Text())); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
})

func main() {
	process.Init()
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	limit := flag.Int("n", 0, "stop after this many connections (0: until SIGINT)")
	client := flag.String("client", "", "run as a client of the server at this address; arguments are the lines to send")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `usage:
  echoserver [-addr host:port] [-n count]     serve: one process per connection
  echoserver -client host:port line...        send lines, print the replies

flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(0)
	if *client != "" {
		if err := runClient(*client, flag.Args()); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := runServer(*addr, *limit); err != nil {
		log.Fatal(err)
	}
}

func runServer(addr string, limit int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	// Catch SIGINT before saying where we listen: a client (or a test)
	// may send it as soon as it has read that line.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("listening on %s\n", ln.Addr())
	// Run bare, the server waits for clients: say how to be one.
	fmt.Fprintf(os.Stderr, "connect with: echoserver -client %s hello world (or nc %s %d); Ctrl-C stops the server\n",
		ln.Addr(), ln.Addr().(*net.TCPAddr).IP, ln.Addr().(*net.TCPAddr).Port)

	go func() { <-ctx.Done(); ln.Close() }()

	var wg sync.WaitGroup
	for n := 0; limit == 0 || n < limit; n++ {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			return err
		}
		p := process.New(serve, c.(*net.TCPConn))
		err = p.Start()
		c.Close() // the child has its own copy
		if err != nil {
			return err
		}
		fmt.Printf("connection from %s served by pid %d\n", c.RemoteAddr(), p.Pid())
		wg.Go(func() {
			if err := p.Join(context.Background()); err != nil {
				log.Printf("session %d: %v", p.Pid(), err)
			}
		})
	}
	// Ctrl-C: ask every session to finish, then wait for them.
	if ctx.Err() != nil {
		for _, p := range process.ActiveChildren() {
			p.Interrupt()
		}
	}
	wg.Wait()
	fmt.Println("server done")
	return nil
}

func runClient(addr string, lines []string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, l := range lines {
		if _, err := fmt.Fprintln(c, l); err != nil {
			return err
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Print(reply)
	}
	return nil
}

// Command clusterpool counts the primes below a bound with a pool whose
// workers run on several hosts, through NATS JetStream, and shows the pool
// surviving the death of a whole host.
//
// With no flags it plays the whole cluster on this machine: it starts an
// embedded NATS server and two "hosts" (child processes serving the pool,
// each with its own worker processes), maps a CPU-bound job across them with
// a progress line, kills one host mid-run, and shows its tasks finishing on
// the other once AckWait has passed:
//
//	go run ./cluster/examples/clusterpool
//
// The same program runs on real machines. Give every process the server's
// address and its token (over TLS beyond loopback):
//
//	clusterpool -serve -server tls://head:4222 -token s3cret -tls-ca ca.pem   # on each worker host
//	clusterpool -server tls://head:4222 -token s3cret -tls-ca ca.pem          # the caller
//
// A host must run the same build of the program as the caller: tasks are
// found by their registered name, and a host of another build never gets
// this build's tasks.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"golang.org/x/sys/unix"
)

// poolName is the pool the hosts serve and the caller opens.
const poolName = "primes"

// Range is the half-open interval [Lo, Hi).
type Range struct{ Lo, Hi int }

// Count is a range's prime count, and the pid of the host that counted it.
type Count struct {
	Primes int
	Host   int
}

// countPrimes is CPU-bound: trial division of every number in the range.
// It runs in a worker process of some host: the worker's parent is that
// host.
var countPrimes = pool.Register("clusterpool.countPrimes", func(ctx context.Context, r Range) (Count, error) {
	n := 0
	for x := r.Lo; x < r.Hi; x++ {
		if x&0xfff == 0 && ctx.Err() != nil {
			return Count{}, ctx.Err()
		}
		if isPrime(x) {
			n++
		}
	}
	return Count{Primes: n, Host: os.Getppid()}, nil
})

func isPrime(x int) bool {
	if x < 2 {
		return false
	}
	if x%2 == 0 {
		return x == 2
	}
	for d := 3; d*d <= x; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}

// hostArg is what a local host process needs.
type hostArg struct {
	URL     string
	Workers int
}

// localHost is one of the demo's hosts: a child process of this program
// serving the pool until it is interrupted or killed.
var localHost = process.Register("clusterpool.host", func(ctx context.Context, a hostArg) error {
	c, err := cluster.Connect(ctx, a.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	return cluster.ServePool(ctx, c, poolName, pool.Workers(a.Workers))
})

type config struct {
	n, ranges, workers int
	ackWait            time.Duration
	server, token, ca  string
	serve              bool
}

func main() {
	process.Init() // first: in a host or a worker this runs its part and never returns

	var cfg config
	flag.IntVar(&cfg.n, "n", 3_000_000, "count the primes below n")
	flag.IntVar(&cfg.ranges, "ranges", 60, "split the work into this many ranges (tasks)")
	flag.IntVar(&cfg.workers, "workers", 2, "worker processes per host")
	flag.DurationVar(&cfg.ackWait, "ackwait", 2*time.Second, "how long a silent host keeps its tasks before they go to another")
	flag.StringVar(&cfg.server, "server", "", "NATS server URL(s), comma-separated (default: start an embedded server and two local hosts)")
	flag.StringVar(&cfg.token, "token", "", "the server's token")
	flag.StringVar(&cfg.ca, "tls-ca", "", "PEM file of the CA that signed the server's certificate (dial with TLS)")
	flag.BoolVar(&cfg.serve, "serve", false, "be a host: serve the pool with -workers workers until interrupted")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "clusterpool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	if cfg.server == "" {
		if cfg.serve {
			return errors.New("-serve needs -server")
		}
		return demo(ctx, cfg)
	}
	var opts []cluster.Option
	if cfg.token != "" {
		opts = append(opts, cluster.Token(cfg.token))
	}
	if cfg.ca != "" {
		pem, err := os.ReadFile(cfg.ca)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", cfg.ca)
		}
		opts = append(opts, cluster.TLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	}
	c, err := cluster.Connect(ctx, cfg.server, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	if cfg.serve {
		fmt.Printf("serving pool %q with %d workers (pid %d); Ctrl-C to stop\n", poolName, cfg.workers, os.Getpid())
		return cluster.ServePool(ctx, c, poolName, pool.Workers(cfg.workers))
	}
	return count(ctx, c, cfg, nil)
}

// demo plays a cluster on this machine: an embedded server and two hosts.
func demo(ctx context.Context, cfg config) error {
	start := time.Now()
	srv, err := cluster.Start(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("embedded NATS server at %s (started in %v)\n", srv.URL(), time.Since(start).Round(time.Millisecond))
	var hosts []*process.Process
	for range 2 {
		h := process.New(localHost, hostArg{URL: srv.URL(), Workers: cfg.workers})
		if err := h.Start(); err != nil {
			return err
		}
		hosts = append(hosts, h)
		defer func() {
			h.Interrupt()
			jctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if h.Join(jctx) != nil {
				h.Kill()
				h.Join(context.Background())
			}
		}()
	}
	fmt.Printf("host 1 (pid %d) and host 2 (pid %d) serve pool %q, %d workers each\n",
		hosts[0].Pid(), hosts[1].Pid(), poolName, cfg.workers)
	c, err := cluster.Connect(ctx, srv.URL())
	if err != nil {
		return err
	}
	defer c.Close()
	return count(ctx, c, cfg, hosts)
}

// count maps the job across the hosts. In the demo it kills the first host
// a third of the way through.
func count(ctx context.Context, c *cluster.Cluster, cfg config, hosts []*process.Process) error {
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := cluster.OpenPool(octx, c, poolName, cluster.AckWait(cfg.ackWait))
	if err != nil {
		return err
	}
	defer p.Terminate() // on an early return; a no-op after Close and Join
	if len(hosts) > 0 {
		// Wait for both hosts, so that both take part from the start.
		for st, _ := cluster.Stats(p); st.Hosts < len(hosts); st, _ = cluster.Stats(p) {
			select {
			case <-octx.Done():
				return octx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	ranges := make([]Range, cfg.ranges)
	for i := range ranges {
		ranges[i] = Range{cfg.n * i / cfg.ranges, cfg.n * (i + 1) / cfg.ranges}
	}
	show := progress(os.Stderr)
	var once sync.Once
	var killedAt int
	start := time.Now()
	counts, err := pool.Map(ctx, p, countPrimes, ranges, pool.Chunksize(1),
		pool.Progress(func(done, total int) {
			show(done, total)
			if len(hosts) > 0 && done >= total/3 {
				once.Do(func() {
					hosts[0].Kill()
					killedAt = done
				})
			}
		}))
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	total := 0
	by := map[int]int{}
	for _, c := range counts {
		total += c.Primes
		by[c.Host]++
	}
	if len(hosts) > 0 {
		fmt.Printf("killed host 1 (pid %d) after %d of %d ranges: the tasks it held went to host 2 after AckWait (%v)\n",
			hosts[0].Pid(), killedAt, len(ranges), cfg.ackWait)
		fmt.Printf("ranges counted: %d by host 1, %d by host 2\n", by[hosts[0].Pid()], by[hosts[1].Pid()])
	} else {
		fmt.Printf("ranges counted by %d hosts: %v\n", len(by), by)
	}
	st, _ := cluster.Stats(p)
	fmt.Printf("%d primes below %d (%d ranges in %v; %d late duplicates dropped)\n",
		total, cfg.n, len(ranges), elapsed.Round(time.Millisecond), st.Duplicates)
	p.Close()
	return p.Join(ctx)
}

// progress returns a function that shows how far the map is on f: one
// line rewritten in place ("\r") on a terminal, else a line at every tenth
// of the work, so that a log file holds no "\r".
func progress(f *os.File) func(done, total int) {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	tty := err == nil
	shown := 0
	return func(done, total int) {
		switch {
		case tty:
			fmt.Fprintf(f, "\rcounting: %d/%d ranges", done, total)
			if done == total {
				fmt.Fprintln(f)
			}
		case done == total || (done-shown)*10 >= total:
			shown = done
			fmt.Fprintf(f, "counting: %d/%d ranges\n", done, total)
		}
	}
}

//go:build linux

package cluster_test

import (
	"context"
	"fmt"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/pool"
)

// A pool across hosts. Here the "host" is a goroutine of the same program
// with its own worker processes; on real machines it is the same binary
// started with ServePool on each host, connected to the same server.
func ExampleOpenPool() {
	ctx := context.Background()
	srv, err := cluster.Start(ctx) // or Connect to a real NATS server
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// The host's side: serve pool "squares" with two worker processes.
	hostConn, err := cluster.Connect(ctx, srv.URL())
	if err != nil {
		panic(err)
	}
	defer hostConn.Close()
	hostCtx, stopHost := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cluster.ServePool(hostCtx, hostConn, "squares", pool.Workers(2)) }()

	// The caller's side: the line that makes the pool is the only change
	// from a local pool (pool.New).
	c, err := cluster.Connect(ctx, srv.URL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p, err := cluster.OpenPool(ctx, c, "squares")
	if err != nil {
		panic(err)
	}
	squares, err := pool.Map(ctx, p, square, []int{1, 2, 3, 4})
	fmt.Println(squares, err)
	p.Close()
	p.Join(ctx)

	stopHost()
	fmt.Println(<-served)
	// Output:
	// [1 4 9 16] <nil>
	// <nil>
}

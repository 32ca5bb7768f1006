//go:build linux

package cluster_test

import (
	"context"
	"fmt"
	"os"

	"github.com/mpgo/multiprocessing/cluster"
)

func Example() {
	ctx := context.Background()
	store, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(store)
	srv, err := cluster.Start(ctx, cluster.StoreDir(store))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	c, err := cluster.Connect(ctx, srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	q, err := cluster.OpenQueue[string](ctx, c, "greetings")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	q.Put(ctx, "hello")
	msg, _ := q.Get(ctx)
	fmt.Println(msg)

	d, err := cluster.OpenDict[string, int](ctx, c, "counts")
	if err != nil {
		fmt.Println(err)
		return
	}
	d.Add(ctx, "visits", 1)
	n, _ := d.Add(ctx, "visits", 1)
	fmt.Println(n)
	// Output:
	// hello
	// 2
}

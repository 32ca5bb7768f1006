package pipe_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mpgo/multiprocessing/pipe"
)

func ExamplePipe() {
	a, b, _ := pipe.Pipe()
	defer a.Close()
	defer b.Close()
	a.Send(map[string]int{"answer": 42})
	var m map[string]int
	b.Recv(&m)
	fmt.Println(m["answer"])
	// Output: 42
}

// Listen and Dial speak Python's multiprocessing.connection protocol: a
// Python Client(address, authkey=b"secret") could be the other end.
func ExampleListen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	key := []byte("secret")
	l, _ := pipe.Listen("unix", filepath.Join(dir, "sock"), key)
	defer l.Close()
	go func() {
		c, err := pipe.Dial(context.Background(), "unix", l.Addr().String(), key)
		if err != nil {
			return
		}
		c.SendBytes([]byte("hello"))
		c.Close()
	}()
	c, err := l.Accept(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	msg, _ := c.RecvBytes()
	fmt.Println(string(msg))
	// Output: hello
}

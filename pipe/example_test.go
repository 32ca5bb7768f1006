//go:build linux

package pipe_test

import (
	"context"
	"errors"
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

// A number that does not fit the type it is received into is an error,
// not a silently narrowed value; into any, integers arrive as int64.
func ExampleDecodeError() {
	a, b, _ := pipe.Pipe()
	defer a.Close()
	defer b.Close()
	a.Send(100000)
	var small int8
	err := b.Recv(&small)
	var de *pipe.DecodeError
	fmt.Println(errors.As(err, &de), de.Type)
	fmt.Println(err)

	a.Send(1)
	var x any
	b.Recv(&x)
	fmt.Printf("%T %v\n", x, x == any(int64(1)))
	// Output:
	// true int8
	// pipe: recv: cannot decode number 100000 into Go value of type int8: it does not fit; receive into a wider type (int64, uint64, float64) or into any
	// int64 true
}

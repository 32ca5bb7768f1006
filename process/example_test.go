//go:build linux

package process_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
)

// Functions that run in children are registered at package level, so the
// child (the same binary) has them too.
var greet = process.Register("example.greet", func(ctx context.Context, name string) error {
	fmt.Printf("hello, %s, from a child process\n", name)
	return nil
})

var upper = process.Register("example.upper", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	var s string
	if err := c.Recv(&s); err != nil {
		return err
	}
	return c.Send(strings.ToUpper(s))
})

var failing = process.Register("example.failing", func(ctx context.Context, _ struct{}) error {
	return errors.New("disk full")
})

func Example() {
	// In main, process.Init() comes first; here TestMain calls it.
	p := process.New(greet, "gopher")
	if err := p.Start(); err != nil {
		panic(err)
	}
	if err := p.Join(context.Background()); err != nil {
		panic(err)
	}
	code, _ := p.ExitCode()
	fmt.Println("exit code", code)
	// Output:
	// hello, gopher, from a child process
	// exit code 0
}

// A pipe end passed in the argument arrives in the child working.
func Example_pipe() {
	mine, theirs, _ := pipe.Pipe()
	defer mine.Close()
	p := process.New(upper, theirs)
	if err := p.Start(); err != nil {
		panic(err)
	}
	theirs.Close()
	mine.Send("shout")
	var got string
	mine.Recv(&got)
	fmt.Println(got, p.Join(context.Background()))
	// Output: SHOUT <nil>
}

func ExampleExitError() {
	p := process.New(failing, struct{}{}, process.WithName("backup"))
	p.Start()
	err := p.Join(context.Background())
	var ee *process.ExitError
	if errors.As(err, &ee) {
		fmt.Println(ee.Name, ee.Code, ee.Message)
	}
	// Output: backup 1 disk full
}

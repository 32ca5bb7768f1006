//go:build linux

package sharedmem_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/sharedmem"
)

type squaresArg struct {
	A    *sharedmem.Array[int64]
	Half int
}

// squares fills its half of the array; nothing is sent back.
var squares = process.Register("sharedmem_test.squares", func(ctx context.Context, a squaresArg) error {
	defer a.A.Close()
	s := a.A.Slice()
	n := len(s) / 2
	for i := a.Half * n; i < (a.Half+1)*n; i++ {
		s[i] = int64(i * i)
	}
	return nil
})

// Two child processes fill one shared array; the parent reads what they
// wrote.
func Example() {
	a, err := sharedmem.NewArray[int64](10)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	var ps []*process.Process
	for half := range 2 {
		p := process.New(squares, squaresArg{a, half})
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Join(context.Background()); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(a.Slice())
	// Output: [0 1 4 9 16 25 36 49 64 81]
}

type countArg struct{ V *sharedmem.Value[int64] }

var count = process.Register("sharedmem_test.count", func(ctx context.Context, a countArg) error {
	defer a.V.Close()
	for range 1000 {
		a.V.Add(1) // atomic across processes: no lock
	}
	return nil
})

// Processes add to one counter without a lock (Python would need
// get_lock() around "+= 1").
func ExampleValue_Add() {
	v, err := sharedmem.NewValue[int64](0)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	var ps []*process.Process
	for range 3 {
		p := process.New(count, countArg{v})
		if err := p.Start(); err != nil {
			log.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Join(context.Background()); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(v.Load())
	// Output: 3000
}

// A named block, as Python's SharedMemory(name, create=True, size=...):
// another program (Go or Python) opens it by name. It lives until Unlink.
func ExampleCreate() {
	name := fmt.Sprintf("example-%d", os.Getpid())
	m, err := sharedmem.Create(name, 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	defer m.Unlink() // without it the block outlives the program
	copy(m.Bytes(), "hello")

	// Elsewhere: Python's SharedMemory(name) sees the same bytes.
	o, err := sharedmem.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close()
	fmt.Println(o.Name() == name, o.Size(), string(o.Bytes()[:5]))
	// Output: true 4096 hello
}

// A typed view of a block, the numpy.ndarray(buffer=shm.buf) of Go.
func ExampleSlice() {
	m, err := sharedmem.New(8 * 4)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	f, err := sharedmem.Slice[float64](m)
	if err != nil {
		log.Fatal(err)
	}
	f[3] = 2.5
	fmt.Println(len(f), f, m.Bytes()[31])

	odd, err := sharedmem.New(12)
	if err != nil {
		log.Fatal(err)
	}
	defer odd.Close()
	_, err = sharedmem.Slice[float64](odd)
	fmt.Println(err)
	// Output:
	// 4 [0 0 0 2.5] 64
	// sharedmem: bad size: 12 bytes do not divide into float64 elements of 8 bytes
}

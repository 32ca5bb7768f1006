//go:build linux

package pipe_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
)

type small struct {
	N int
	S string
}

// echo answers every message with the same message until EOF.
var echo = process.Register("pipe_test.echo", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.RecvBytesInto(buf)
		msg := buf[:n]
		var long *pipe.BufferTooShortError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &long):
			msg = long.Message
		case err != nil:
			return err
		}
		if err := c.SendBytes(msg); err != nil {
			return err
		}
	}
})

// How the sink receives: as Python's recv_bytes_into, recv_bytes, or recv.
const (
	recvInto = iota
	recvBytes
	recvValue
)

type sinkArgs struct {
	R, W *pipe.Conn
	Mode int
}

// sink reads messages until EOF and then answers with the count.
var sink = process.Register("pipe_test.sink", func(ctx context.Context, a sinkArgs) error {
	buf := make([]byte, 2<<20)
	n := 0
	for {
		var err error
		switch a.Mode {
		case recvInto:
			_, err = a.R.RecvBytesInto(buf)
		case recvBytes:
			_, err = a.R.RecvBytes()
		case recvValue:
			var b []byte
			err = a.R.Recv(&b)
		}
		if errors.Is(err, io.EOF) {
			return a.W.Send(n)
		}
		if err != nil {
			return err
		}
		n++
	}
})

func startEcho(b *testing.B) (*pipe.Conn, *process.Process) {
	a, c, err := pipe.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	p := process.New(echo, c)
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	c.Close()
	return a, p
}

func stopEcho(b *testing.B, a *pipe.Conn, p *process.Process) {
	a.Close()
	if err := p.Join(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPingPongSmall: Send/Recv of a small value with a child (Python:
// pipe_pingpong_small, send/recv of (1, "x")).
func BenchmarkPingPongSmall(b *testing.B) {
	a, p := startEcho(b)
	defer stopEcho(b, a, p)
	v := small{1, "x"}
	var got small
	for b.Loop() {
		if err := a.Send(v); err != nil {
			b.Fatal(err)
		}
		if err := a.Recv(&got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/roundtrip")
}

// BenchmarkPingPongBytes: 8-byte SendBytes/RecvBytes round trip with a child
// (Python: pipe_pingpong_bytes).
func BenchmarkPingPongBytes(b *testing.B) {
	a, p := startEcho(b)
	defer stopEcho(b, a, p)
	msg := []byte("12345678")
	buf := make([]byte, 8)
	for b.Loop() {
		if err := a.SendBytes(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := a.RecvBytesInto(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/roundtrip")
}

func throughput(b *testing.B, duplex bool, mode int) {
	var r, w, back, backW *pipe.Conn
	var err error
	if duplex {
		r, w, err = pipe.Pipe()
	} else {
		r, w, err = pipe.Simplex()
	}
	if err != nil {
		b.Fatal(err)
	}
	back, backW, err = pipe.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	p := process.New(sink, sinkArgs{r, backW, mode})
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	r.Close()
	backW.Close()
	msg := make([]byte, 1<<20)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if mode == recvValue {
			err = w.Send(msg)
		} else {
			err = w.SendBytes(msg)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	var n int
	if err := back.Recv(&n); err != nil {
		b.Fatal(err)
	}
	back.Close()
	if err := p.Join(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkThroughput: 1 MiB messages over Pipe (a socketpair) to a child
// that receives them into its buffer with RecvBytesInto.
func BenchmarkThroughput(b *testing.B) { throughput(b, true, recvInto) }

// BenchmarkThroughputRecvBytes: the same, the child receiving each message
// as a new slice with RecvBytes (Python: pipe_throughput, whose child calls
// recv_bytes).
func BenchmarkThroughputRecvBytes(b *testing.B) { throughput(b, true, recvBytes) }

// BenchmarkThroughputRecv: 1 MiB []byte values with Send and Recv.
func BenchmarkThroughputRecv(b *testing.B) { throughput(b, true, recvValue) }

// BenchmarkThroughputSimplex: 1 MiB messages over Simplex (an OS pipe)
// (Python: pipe_throughput_simplex).
func BenchmarkThroughputSimplex(b *testing.B) { throughput(b, false, recvInto) }

// BenchmarkThroughputSimplexRecvBytes: the same with RecvBytes.
func BenchmarkThroughputSimplexRecvBytes(b *testing.B) { throughput(b, false, recvBytes) }

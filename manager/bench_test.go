//go:build linux

package manager_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
)

type benchArg struct {
	D   *manager.Dict[int, int]
	N   int
	Ctl *pipe.Conn
	Bg  bool // use context.Background instead of the child's ctx
}

// setGetChild does N operations, alternating Set and Get as Python's
// manager_dict_ops does, and reports how long they took.
var setGetChild = process.Register("bench.setGet", func(ctx context.Context, a benchArg) error {
	if a.Bg {
		ctx = context.Background()
	}
	if err := a.D.Set(ctx, 0, 0); err != nil { // connect and bind first
		return err
	}
	var s string
	if err := a.Ctl.Send("ready"); err != nil {
		return err
	}
	if err := a.Ctl.Recv(&s); err != nil {
		return err
	}
	begin := time.Now()
	for i := range a.N {
		var err error
		if i%2 == 0 {
			err = a.D.Set(ctx, i&1023, i)
		} else {
			_, _, err = a.D.Get(ctx, i&1023)
		}
		if err != nil {
			return err
		}
	}
	return a.Ctl.Send(time.Since(begin))
})

func benchSetGet(b *testing.B, bg bool) {
	m := start(b)
	ctx := context.Background()
	d, err := manager.NewDict[int, int](ctx, m)
	require.NoError(b, err)
	ctl, childCtl, err := pipe.Pipe()
	require.NoError(b, err)
	defer ctl.Close()
	p := process.New(setGetChild, benchArg{D: d, N: b.N, Ctl: childCtl, Bg: bg})
	require.NoError(b, p.Start())
	childCtl.Close()
	var s string
	require.NoError(b, ctl.Recv(&s))
	b.ResetTimer()
	require.NoError(b, ctl.Send("go"))
	var took time.Duration
	require.NoError(b, ctl.Recv(&took))
	b.StopTimer()
	require.NoError(b, p.Join(ctx))
	b.ReportMetric(float64(b.N)/took.Seconds(), "ops/s")
	b.ReportMetric(float64(took.Microseconds())/float64(b.N), "us/op")
}

// BenchmarkDictSetGet: Dict Set and Get, alternating, from a child process
// (Python: manager_dict_ops, 15k ops/s; one socketpair round trip per op
// is the limit). The child uses the ctx its function got, as real code
// does.
func BenchmarkDictSetGet(b *testing.B) { benchSetGet(b, false) }

// BenchmarkDictParallel: many goroutines of one process sharing one
// connection (their calls are pipelined and batched).
func BenchmarkDictParallel(b *testing.B) {
	m := start(b)
	ctx := context.Background()
	d, err := manager.NewDict[int, int](ctx, m)
	require.NoError(b, err)
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			var err error
			if i%2 == 0 {
				err = d.Set(ctx, i&1023, i)
			} else {
				_, _, err = d.Get(ctx, i&1023)
			}
			if err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkStart: Start to a usable manager (one call answered), then
// Close outside the timer.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		m, err := manager.Start(ctx)
		require.NoError(b, err)
		_, err = manager.NewValue(ctx, m, 0)
		require.NoError(b, err)
		b.StopTimer()
		require.NoError(b, m.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/start")
}

var benchNoop = process.Register("bench.noop", func(context.Context, struct{}) error { return nil })

// BenchmarkProcessStart is the reference for BenchmarkStart: a child
// started until it runs its function (Start, then Join of a no-op).
func BenchmarkProcessStart(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		p := process.New(benchNoop, struct{}{})
		require.NoError(b, p.Start())
		require.NoError(b, p.Join(ctx))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/start")
}

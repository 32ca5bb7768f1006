package manager_test

import (
	"context"
	"testing"

	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/require"
)

func BenchmarkDictSetGetLocal(b *testing.B) {
	m := start(b)
	ctx := context.Background()
	d, err := manager.NewDict[int, int](ctx, m)
	require.NoError(b, err)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			err = d.Set(ctx, i&1023, i)
		} else {
			_, _, err = d.Get(ctx, i&1023)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkDictParallelLocal(b *testing.B) {
	m := start(b)
	ctx := context.Background()
	d, err := manager.NewDict[int, int](ctx, m)
	require.NoError(b, err)
	b.SetParallelism(32)
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

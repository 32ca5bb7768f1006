//go:build linux

package lock_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
)

// Python row lock_uncontended: acquire+release pairs in one process.
func BenchmarkLockUncontended(b *testing.B) {
	l, err := lock.NewLock()
	require.NoError(b, err)
	defer l.Close()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// For comparison: the same through sync.Locker.
func BenchmarkLockUncontendedLocker(b *testing.B) {
	l, err := lock.NewLock()
	require.NoError(b, err)
	defer l.Close()
	for b.Loop() {
		l.Lock()
		//lint:ignore SA2001 the pair is what is measured
		l.Unlock()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

type contendArg struct {
	L     *lock.Lock
	Mem   *os.File
	N     int
	Start *lock.Barrier
	Done  *lock.Semaphore
}

var contender = process.Register("lock.bench.contend", func(ctx context.Context, a contendArg) error {
	w, err := mapShared(a.Mem)
	if err != nil {
		return err
	}
	if _, err := a.Start.Wait(ctx); err != nil {
		return err
	}
	increment(a.L, word(w, 0), a.N)
	return a.Done.Release()
})

// Python row lock_contended: 2 processes, each lock, counter++ (in shared
// memory), unlock; ops/s over both, from the start signal to the last
// done.
func BenchmarkLockContended(b *testing.B) {
	l, err := lock.NewLock()
	require.NoError(b, err)
	defer l.Close()
	start, err := lock.NewBarrier(3)
	require.NoError(b, err)
	defer start.Close()
	done, err := lock.NewSemaphore(0)
	require.NoError(b, err)
	defer done.Close()
	mem := newShared(b)
	w := mustMap(b, mem)
	per := max(b.N/2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var kids []*process.Process
	for range 2 {
		p := process.New(contender, contendArg{L: l, Mem: mem, N: per, Start: start, Done: done})
		require.NoError(b, p.Start())
		kids = append(kids, p)
	}
	_, err = start.Wait(ctx)
	require.NoError(b, err)
	b.ResetTimer()
	t0 := time.Now()
	for range 2 {
		require.NoError(b, done.Acquire(ctx))
	}
	d := time.Since(t0)
	b.StopTimer()
	for _, p := range kids {
		require.NoError(b, p.Join(ctx))
	}
	require.Equal(b, uint64(2*per), word(w, 0).Load())
	b.ReportMetric(float64(2*per)/d.Seconds(), "ops/s")
}

func BenchmarkRLockUncontended(b *testing.B) {
	r, err := lock.NewRLock()
	require.NoError(b, err)
	defer r.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := r.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := r.Release(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func BenchmarkSemaphoreUncontended(b *testing.B) {
	s, err := lock.NewSemaphore(1)
	require.NoError(b, err)
	defer s.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := s.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Release(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

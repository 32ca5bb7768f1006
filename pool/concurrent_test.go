//go:build linux

package pool_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
)

// Many goroutines share one pool (run with -race).
func TestConcurrentCallers(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := testbin.Context(t)
			for round := range 5 {
				res, err := pool.Map(ctx, p, square, ints(50+g+round), pool.Chunksize(1+g))
				if assert.NoError(t, err) {
					assert.Equal(t, (49+g+round)*(49+g+round), res[len(res)-1])
				}
				ar := pool.ApplyAsync(p, square, g)
				r, err := ar.Get(ctx)
				assert.NoError(t, err)
				assert.Equal(t, g*g, r)
				n := 0
				for r, err := range pool.ImapUnordered(ctx, p, square, ints(20)) {
					assert.NoError(t, err)
					assert.GreaterOrEqual(t, r, 0)
					n++
					if g%2 == 0 && n == 5 {
						break
					}
				}
			}
		})
	}
	wg.Wait()
}

// The arguments are the caller's again when Map or Imap returns, even
// when it returns early: no writer still reads them (run with -race).
func TestArgsReleasedOnReturn(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	args := ints(20000)
	for round := range 20 {
		ctx, cancel := context.WithCancel(testbin.Context(t))
		if round%2 == 0 {
			cancel()
			pool.Map(testbin.Context(t), p, failAt, args, pool.Chunksize(10+round)) // fails at 3
		} else {
			go cancel()
			pool.Map(ctx, p, square, args, pool.Chunksize(10+round))
		}
		for r := range pool.Imap(testbin.Context(t), p, square, args, pool.Chunksize(100)) {
			if r > 100 {
				break
			}
		}
		cancel()
		for i := range args {
			args[i] = i // the race detector objects if the pool still reads
		}
	}
}

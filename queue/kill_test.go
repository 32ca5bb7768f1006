//go:build linux

package queue_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kitem is an item whose Data is a function of its ID, so that a receiver
// can tell a whole, correct item from anything else.
type kitem struct {
	ID   int
	Data []byte
}

// slab is the random material patterns are cut from; copying it keeps
// pattern cheap enough for race-instrumented children moving megabytes.
var slab = func() []byte {
	b := make([]byte, 1<<16+4096)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

// pattern returns size bytes determined by id: slices of slab starting at
// an offset that depends on id and on the 4 KiB block, so that a chunk put
// in the wrong place or the wrong item shows.
func pattern(id, size int) []byte {
	b := make([]byte, size)
	for blk := 0; blk*4096 < size; blk++ {
		off := (id*7919 + blk*104729) % (1 << 16)
		copy(b[blk*4096:], slab[off:off+4096])
	}
	return b
}

func (k kitem) valid(size int) bool {
	return len(k.Data) == size && bytes.Equal(k.Data, pattern(k.ID, size))
}

type killConsArg struct {
	Q *queue.Queue[kitem]
	// Results is a Simple queue: its Put returns once the report is in the
	// pipe, so a killed checker has no reports buffered.
	Results *queue.Simple[int]
	Size    int
	Storm   bool // items of every size, as stormSize gives them
}

// checker takes items until ID -1, checks each, and reports its ID (or
// -2-ID when it is not whole and correct) at once.
var checker = process.Register("queue.checker", func(ctx context.Context, a killConsArg) error {
	for {
		it, err := a.Q.Get(ctx)
		if err != nil {
			return err
		}
		if it.ID == -1 {
			return nil
		}
		r, size := it.ID, a.Size
		if a.Storm {
			size = stormSize(it.ID)
		}
		if !it.valid(size) {
			r = -2 - it.ID
		}
		if err := a.Results.Put(ctx, r); err != nil {
			return err
		}
	}
})

// killConsumerRound runs 3 checkers on n items of size bytes, SIGKILLs one
// of them at a random instant mid-stream, and checks that the survivors got
// whole, correct items, none twice, and that at most the one item the
// killed checker was holding is missing.
// startCheckers makes a queue of items and a queue of results, and starts
// three checker processes that take items of the given size from the first
// and report on the second; the queues close when the test ends.
func startCheckers(t *testing.T, size int) (*queue.Queue[kitem], *queue.Simple[int], []*process.Process) {
	q, err := queue.New[kitem](0)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	results, err := queue.NewSimple[int]()
	require.NoError(t, err)
	t.Cleanup(func() { results.Close() })
	var procs []*process.Process
	for range 3 {
		p := process.New(checker, killConsArg{Q: q, Results: results, Size: size})
		require.NoError(t, p.Start())
		procs = append(procs, p)
	}
	return q, results, procs
}

func killConsumerRound(t *testing.T, n, size int, seed uint64) {
	ctx := testbin.Context(t)
	rng := rand.New(rand.NewPCG(seed, 99))
	q, results, procs := startCheckers(t, size)
	// Collect results as they come, so that no checker buffers reports.
	got := map[int]int{}
	var taken atomic.Int64
	bad := 0
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			r, err := results.Get(ctx)
			if err != nil || r == -1 {
				return
			}
			if r < -1 {
				bad++
				r = -2 - r
			}
			got[r]++
			taken.Add(1)
		}
	}()
	victim := procs[rng.IntN(len(procs))]
	// Kill one checker at a random instant while they consume: after a
	// random number of results, plus a random delay.
	killAt := rng.IntN(n / 2)
	delay := time.Duration(rng.IntN(2000)) * time.Microsecond
	go func() {
		for ctx.Err() == nil && taken.Load() < int64(killAt) {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(delay)
		victim.Kill()
	}()
	for i := range n {
		require.NoError(t, q.Put(ctx, kitem{ID: i, Data: pattern(i, size)}))
	}
	<-victim.Done()
	for range len(procs) - 1 {
		require.NoError(t, q.Put(ctx, kitem{ID: -1}))
	}
	for _, p := range procs {
		if p == victim {
			continue
		}
		require.NoError(t, p.Join(ctx), "survivor")
	}
	require.NoError(t, results.Put(ctx, -1))
	<-collected
	_, exited := victim.ExitCode()
	require.True(t, exited)
	assert.Equal(t, 0, bad, "items that were not whole and correct")
	missing := 0
	for i := range n {
		switch got[i] {
		case 0:
			missing++
		case 1:
		default:
			t.Errorf("item %d taken %d times", i, got[i])
		}
	}
	// The victim may die holding one item (taken, not yet reported); a stop
	// marker it never took stays in the queue.
	assert.LessOrEqual(t, missing, 1, "items lost beyond the one the killed consumer held")
	left := 0
	for {
		it, err := q.TryGet()
		if err != nil {
			break
		}
		left++
		assert.Equal(t, -1, it.ID, "only stop markers may be left")
	}
	t.Logf("round %d: %d items of %d bytes, killed at %d, %d missing, %d left", seed, n, size, killAt, missing, left)
}

// killRounds is n, or $QUEUE_KILL_ROUNDS for a longer stress run.
func killRounds(n int) int {
	if v, err := strconv.Atoi(os.Getenv("QUEUE_KILL_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return n
}

func TestKillConsumerSmall(t *testing.T) {
	for r := range killRounds(4) {
		t.Run(fmt.Sprint(r), func(t *testing.T) { killConsumerRound(t, 3000, 200, uint64(r)) })
	}
}

func TestKillConsumerLarge(t *testing.T) {
	for r := range killRounds(3) {
		t.Run(fmt.Sprint(r), func(t *testing.T) { killConsumerRound(t, 30, 1<<20, uint64(100+r)) })
	}
}

type bigProdArg struct {
	Q    *queue.Queue[kitem]
	Size int
	From int
}

// bigProducer puts large items until it is killed.
var bigProducer = process.Register("queue.bigproducer", func(ctx context.Context, a bigProdArg) error {
	for i := a.From; ; i++ {
		if err := a.Q.Put(ctx, kitem{ID: i, Data: pattern(i, a.Size)}); err != nil {
			return err
		}
		if err := a.Q.Flush(ctx); err != nil {
			return err
		}
	}
})

// TestKillProducerMidItem: a producer SIGKILLed while it writes a large item
// leaves a torn item; Get(ctx) does not wedge on it, and the items that
// follow arrive whole.
func TestKillProducerMidItem(t *testing.T) {
	const size = 4 << 20
	for r := range killRounds(3) {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			ctx := testbin.Context(t)
			rng := rand.New(rand.NewPCG(uint64(r), 5))
			q, err := queue.New[kitem](0)
			require.NoError(t, err)
			defer q.Close()
			p := process.New(bigProducer, bigProdArg{Q: q, Size: size})
			require.NoError(t, p.Start())
			it, err := q.Get(ctx)
			require.NoError(t, err)
			require.True(t, it.valid(size))
			// Read the next item slowly in the background while the
			// producer is killed at a random instant mid-item.
			type res struct {
				it  kitem
				err error
			}
			done := make(chan res, 1)
			go func() {
				gctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				it, err := q.Get(gctx)
				done <- res{it, err}
			}()
			time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
			require.NoError(t, p.Kill())
			<-p.Done()
			select {
			case r := <-done:
				if r.err == nil {
					assert.True(t, r.it.valid(size), "an item that arrives is whole")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Get wedged on a torn item")
			}
			// The queue works on: another producer's items arrive whole.
			p2 := process.New(bigProducer, bigProdArg{Q: q, Size: size, From: 1000})
			require.NoError(t, p2.Start())
			for range 2 {
				gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				it, err := q.Get(gctx)
				cancel()
				require.NoError(t, err)
				assert.True(t, it.valid(size))
			}
			require.NoError(t, p2.Kill())
			<-p2.Done()
			c, _ := p2.ExitCode()
			assert.Equal(t, -int(syscall.SIGKILL), c)
		})
	}
}

// TestKillProducerMidItemManyReaders: of two producers of large items,
// one is SIGKILLed at a random instant, mostly while it writes an item's
// chunks; three consumer processes read each chunk straight into the item
// it belongs to. Every item the consumers get is whole and correct, none
// twice, all of the surviving producer's items arrive, and the killed one
// loses at most the item it was writing and the one it had buffered.
func TestKillProducerMidItemManyReaders(t *testing.T) {
	const size, n = 1 << 20, 12
	for r := range killRounds(4) {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			ctx := testbin.Context(t)
			rng := rand.New(rand.NewPCG(uint64(r), 77))
			q, results, cons := startCheckers(t, size)
			victim := process.New(bigProducer, bigProdArg{Q: q, Size: size, From: 1000})
			survivor := process.New(largeProducer, largeProdArg{Q: q, From: 0, N: n, Size: size})
			require.NoError(t, victim.Start())
			got := map[int]int{}
			bad := 0
			take := func() {
				v, err := results.Get(ctx)
				require.NoError(t, err)
				if v < -1 {
					bad++
					v = -2 - v
				}
				got[v]++
			}
			// Let the victim's items flow, then start the survivor and
			// kill the victim at a random instant while both write.
			for range 1 + rng.IntN(3) {
				take()
			}
			require.NoError(t, survivor.Start())
			time.Sleep(time.Duration(rng.IntN(30000)) * time.Microsecond)
			require.NoError(t, victim.Kill())
			<-victim.Done()
			require.NoError(t, survivor.Join(ctx))
			for got0 := 0; got0 < n; {
				take()
				got0 = 0
				for i := range n {
					got0 += min(got[i], 1)
				}
			}
			for range len(cons) {
				require.NoError(t, q.Put(ctx, kitem{ID: -1}))
			}
			for _, p := range cons {
				require.NoError(t, p.Join(ctx))
			}
			for !results.Empty() {
				take() // reports of the victim's last items
			}
			assert.Equal(t, 0, bad, "items that were not whole and correct")
			hi := 999
			for id, k := range got {
				assert.Equal(t, 1, k, "item %d taken %d times", id, k)
				hi = max(hi, id)
			}
			for i := range n {
				assert.Equal(t, 1, got[i], "survivor's item %d", i)
			}
			missing := 0
			for i := 1000; i <= hi; i++ {
				if got[i] == 0 {
					missing++
				}
			}
			// The victim puts one item at a time and flushes it: what it
			// loses is the item it was writing, and the one it had put.
			assert.LessOrEqual(t, missing, 1, "victim's items lost before its last")
			t.Logf("round %d: victim's items 1000..%d arrived, %d missing", r, hi, missing)
		})
	}
}

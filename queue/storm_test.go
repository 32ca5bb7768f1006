//go:build linux

package queue_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stormSize is the Data size of item id: 30 % of the items are over
// 4 KiB (cut into chunks), the rest fit in a packet.
func stormSize(id int) int {
	h := uint32(id) * 2654435761
	if h%10 < 3 {
		return 5000 + int(h>>8)%27000
	}
	return int(h>>8) % 200
}

type stormProdArg struct {
	Q *queue.Queue[kitem]
	// Acks is a Simple queue: a killed producer has acknowledged every
	// accepted Put but the one it was killed after.
	Acks  *queue.Simple[int]
	Base  int
	Until int64 // UnixNano
}

// stormProducer puts items as fast as Put accepts them until Until, and
// acknowledges each accepted one.
var stormProducer = process.Register("queue.stormproducer", func(ctx context.Context, a stormProdArg) error {
	for i := a.Base; time.Now().UnixNano() < a.Until; i++ {
		if err := a.Q.Put(ctx, kitem{ID: i, Data: pattern(i, stormSize(i))}); err != nil {
			return err
		}
		if err := a.Acks.Put(ctx, i); err != nil {
			return err
		}
	}
	return nil
})

// collect reads ints from s until -1, into a count per value.
func collect(ctx context.Context, s *queue.Simple[int]) <-chan map[int]int {
	out := make(chan map[int]int, 1)
	go func() {
		m := map[int]int{}
		for {
			v, err := s.Get(ctx)
			if err != nil || v == -1 {
				out <- m
				return
			}
			m[v]++
		}
	}()
	return out
}

// An unbounded queue under a kill storm: 4 producers and 4 consumers, one
// of them SIGKILLed at random every 50 ms and replaced, 30 % of the items
// over 4 KiB. Every item a Put accepted arrives whole and once, except what
// the kills took: at most MaxUnwritten items per killed producer (what it
// held unwritten) and 2 per killed consumer (the item it was taking and the
// one it had not yet reported). Before producers were bounded, a killed
// producer lost everything it had buffered: most of what was accepted.
func TestKillStormLossIsBounded(t *testing.T) {
	ctx := testbin.Context(t)
	storm := 3 * time.Second
	if testbin.RaceEnabled {
		storm = 2 * time.Second
	}
	rng := rand.New(rand.NewPCG(1, 2))
	q, err := queue.New[kitem](0)
	require.NoError(t, err)
	defer q.Close()
	acks, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer acks.Close()
	results, err := queue.NewSimple[int]()
	require.NoError(t, err)
	defer results.Close()
	ackc, resc := collect(ctx, acks), collect(ctx, results)

	until := time.Now().Add(storm)
	base := 0
	newProducer := func() *process.Process {
		base += 1 << 24
		return process.New(stormProducer, stormProdArg{Q: q, Acks: acks, Base: base, Until: until.UnixNano()})
	}
	newConsumer := func() *process.Process {
		return process.New(checker, killConsArg{Q: q, Results: results, Storm: true})
	}
	const P, C = 4, 4
	procs := make([]*process.Process, P+C)
	for i := range procs {
		if i < P {
			procs[i] = newProducer()
		} else {
			procs[i] = newConsumer()
		}
		require.NoError(t, procs[i].Start())
	}
	prodKills, consKills := 0, 0
	for time.Now().Before(until.Add(-50 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond)
		i := rng.IntN(P + C)
		require.NoError(t, procs[i].Kill())
		<-procs[i].Done()
		if i < P {
			prodKills++
			procs[i] = newProducer()
		} else {
			consKills++
			procs[i] = newConsumer()
		}
		require.NoError(t, procs[i].Start())
	}
	// The producers stop at until and flush what they hold while the
	// consumers read: they exit 0.
	for _, p := range procs[:P] {
		require.NoError(t, p.Join(ctx))
	}
	for range C {
		require.NoError(t, q.Put(ctx, kitem{ID: -1}))
	}
	for _, p := range procs[P:] {
		require.NoError(t, p.Join(ctx))
	}
	require.NoError(t, acks.Put(ctx, -1))
	require.NoError(t, results.Put(ctx, -1))
	acked, got := <-ackc, <-resc

	torn, dups, lost, received := 0, 0, 0, 0
	for id, n := range got {
		if id < -1 {
			torn += n
			continue
		}
		received += n
		dups += n - 1
	}
	for id := range acked {
		if got[id] == 0 {
			lost++
		}
	}
	accepted := len(acked)
	for id := range got {
		if id >= 0 && acked[id] == 0 {
			accepted++ // accepted, its producer killed before the ack
		}
	}
	t.Logf("%d kills (%d producers, %d consumers): %d items accepted, %d received, %d lost, %d duplicates, %d torn",
		prodKills+consKills, prodKills, consKills, accepted, received, lost, dups, torn)
	assert.Zero(t, torn, "torn items")
	assert.Zero(t, dups, "duplicates")
	bound := prodKills*queue.MaxUnwritten + consKills*2
	assert.LessOrEqual(t, lost, bound, "lost more than the kills can take")
	assert.Greater(t, accepted, 1000, "the storm moved items")
}

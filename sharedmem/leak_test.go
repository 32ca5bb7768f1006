//go:build linux

package sharedmem_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/sharedmem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mappings counts this process's mappings of memfds (blocks and their
// locks) and of the named block.
func mappings(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "memfd:mpgo-") || strings.Contains(l, "/dev/shm/"+name) {
			n++
		}
	}
	return n
}

// guardBytes sums the inaccessible anonymous mappings of the process: the
// reservations that Close leaves (and some of the Go runtime's own).
// Adjacent ones merge into one line of /proc/self/maps, so they are counted
// by size, not by line.
func guardBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	var total int64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 5 || f[1] != "---p" {
			continue // not PROT_NONE, or backed by a file
		}
		var lo, hi int64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err == nil {
			total += hi - lo
		}
	}
	return total
}

// settle collects garbage until cond holds or the test's time is up.
func settle(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(testbin.Timeout)
	for !cond() && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNoLeaks: 200 rounds of create, pass and close leak no descriptors
// and no mappings.
func TestNoLeaks(t *testing.T) {
	name := blockName(t)
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	defer c2.Close()
	round := func() {
		m, err := sharedmem.New(1 << 20) // 200 rounds: 200 MiB of guards if they leaked
		require.NoError(t, err)
		a, err := sharedmem.NewArray[float64](1000)
		require.NoError(t, err)
		v, err := sharedmem.NewValue[int32](1)
		require.NoError(t, err)
		n, err := sharedmem.Create(name, 4096)
		require.NoError(t, err)
		o, err := sharedmem.Open(name)
		require.NoError(t, err)
		require.NoError(t, n.Unlink())

		type all struct {
			M, N *sharedmem.Memory
			A    *sharedmem.Array[float64]
			V    *sharedmem.Value[int32]
		}
		require.NoError(t, c1.Send(all{m, n, a, v}))
		var got all
		require.NoError(t, c2.Recv(&got))
		got.V.Add(1)
		assert.Equal(t, int32(2), v.Load())
		for _, c := range []interface{ Close() error }{m, a, v, n, o, got.M, got.N, got.A, got.V} {
			require.NoError(t, c.Close())
		}
	}
	round() // first-use allocations
	runtime.GC()
	fds, maps, guards := testbin.FDCount(t), mappings(t, name), guardBytes(t)
	for range 200 {
		round()
	}
	assert.Equal(t, fds, testbin.FDCount(t), "descriptors")
	// The locks' mappings, and the guard reservations that Close leaves,
	// go when their objects are collected. (The baseline may still hold
	// some from earlier tests; a leak would be 200 rounds' worth: a
	// mapping per object and over 200 MiB of guards.)
	settled := func() bool { return mappings(t, name) <= maps && guardBytes(t) <= guards+64<<20 }
	settle(t, settled)
	assert.LessOrEqual(t, mappings(t, name), maps, "block mappings")
	assert.LessOrEqual(t, guardBytes(t), guards+64<<20, "guard reservations")
}

// TestManyCloses: the guard reservations Close leaves are released when
// their objects are collected, so a program that makes and closes blocks in
// a loop does not pile them up.
func TestManyCloses(t *testing.T) {
	const n, size = 2000, 1 << 20
	runtime.GC()
	before := guardBytes(t)
	for range n {
		m, err := sharedmem.New(size)
		require.NoError(t, err)
		require.NoError(t, m.Close())
	}
	settle(t, func() bool { return guardBytes(t) < before+n*size/4 })
	assert.Less(t, guardBytes(t), before+n*size/4, "%d MiB of guards never released", n)
}

package sharedmem_test

import (
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

// allMappings counts every mapping of the process: the guards left by
// Close are anonymous and are released when their Memory is collected.
func allMappings(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
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
		m, err := sharedmem.New(1 << 16)
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
	fds, maps, total := testbin.FDCount(t), mappings(t, name), allMappings(t)
	for range 200 {
		round()
	}
	assert.Equal(t, fds, testbin.FDCount(t), "descriptors")
	// The locks' mappings, and the guard reservations that Close leaves,
	// go when their objects are collected. (The baseline may still hold
	// some from earlier tests; a leak would be 200 rounds' worth: one
	// mapping per object per round, over 1000.)
	settled := func() bool { return mappings(t, name) <= maps && allMappings(t) <= total+100 }
	deadline := time.Now().Add(testbin.Timeout)
	for !settled() && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, mappings(t, name), maps, "block mappings")
	assert.LessOrEqual(t, allMappings(t), total+100, "mappings (guards included)")
}

// TestManyCloses: a program that makes and closes blocks in a loop,
// allocating little else, does not pile up guard reservations toward the
// kernel's cap on mappings (65530 by default).
func TestManyCloses(t *testing.T) {
	runtime.GC()
	total := allMappings(t)
	for range 10_000 {
		m, err := sharedmem.New(4096)
		require.NoError(t, err)
		require.NoError(t, m.Close())
	}
	assert.Less(t, allMappings(t), total+2500)
}

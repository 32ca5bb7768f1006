//go:build linux

package manager_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// A stored value made of nothing but empty maps (one byte each) would take
// tens of bytes of Go map each to decode into an interface: Get refuses it
// with ErrTooLarge instead of taking a gigabyte of heap.
func TestDecodeCostBounded(t *testing.T) {
	ctx := testbin.Context(t)
	m := start(t)
	const n = 16 << 20
	v := binary.BigEndian.AppendUint32([]byte{0xdd}, n) // array 32
	v = append(v, bytes.Repeat([]byte{0x80}, n)...)     // of empty maps
	raw, err := manager.NewDict[string, msgpack.RawMessage](ctx, m, manager.Named("maps"))
	require.NoError(t, err)
	defer raw.Close()
	require.NoError(t, raw.Set(ctx, "k", v))
	d, err := manager.NewDict[string, any](ctx, m, manager.Named("maps"))
	require.NoError(t, err)
	defer d.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, _, err = d.Get(ctx, "k")
	runtime.ReadMemStats(&ms)
	assert.ErrorIs(t, err, manager.ErrTooLarge)
	assert.Less(t, ms.TotalAlloc-before, uint64(8*n), "allocated to decode a %d-byte value", n)
	// A value of maps that hold something decodes as before.
	small := map[string]any{"a": int64(1), "b": map[string]any{"c": "d"}}
	require.NoError(t, d.Set(ctx, "ok", small))
	got, _, err := d.Get(ctx, "ok")
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint(small), fmt.Sprint(got))
}

// rss returns the resident set size of process pid, in bytes.
func rss(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// After clients send large frames and leave, the server gives the memory
// back to the system within a second or two, not over many minutes.
func TestServerGivesMemoryBack(t *testing.T) {
	if testbin.RaceEnabled {
		t.Skip("the race detector's shadow memory stays resident: RSS says nothing about the heap")
	}
	ctx := testbin.Context(t)
	m := start(t)
	pid := manager.ServerProcess(m).Pid()
	network, addr := m.Address()
	base := rss(t, pid)
	const frames, size = 8, 16 << 20
	func() {
		c, err := manager.Connect(ctx, network, addr, nil)
		require.NoError(t, err)
		defer c.Close()
		d, err := manager.NewDict[int, []byte](ctx, c)
		require.NoError(t, err)
		defer d.Close()
		big := bytes.Repeat([]byte{7}, size)
		for i := range frames {
			require.NoError(t, d.Set(ctx, i, big))
		}
		peak := rss(t, pid)
		t.Logf("server RSS: %d MiB before, %d MiB holding %d values of %d MiB", base>>20, peak>>20, frames, size>>20)
		require.Greater(t, peak, base+frames*size/2, "the values are not in the server's memory: the test proves nothing")
	}()
	limit := base + 4*size
	deadline := time.Now().Add(2*time.Second + testbin.Slack)
	var now int
	for now = rss(t, pid); now > limit && time.Now().Before(deadline); now = rss(t, pid) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("server RSS after the client left: %d MiB", now>>20)
	assert.LessOrEqual(t, now, limit, "the server holds %d MiB after its clients left", now>>20)
}

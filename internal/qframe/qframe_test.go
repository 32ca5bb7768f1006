//go:build linux

package qframe

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chunks cuts item into chunk packets the way a writer does.
func chunks(writer, seq uint64, item []byte) [][]byte {
	n := Chunks(uint64(len(item)))
	var out [][]byte
	for i := uint64(0); i < n; i++ {
		lo := i * ChunkData
		hi := min(lo+ChunkData, uint64(len(item)))
		p := make([]byte, PacketSize)
		k := PutChunk(p, Chunk{Writer: writer, Seq: seq, Size: uint64(len(item)), Index: uint32(i), Count: uint32(n), Data: item[lo:hi]})
		out = append(out, p[:k])
	}
	return out
}

func item(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestChunksCount(t *testing.T) {
	assert.Equal(t, uint64(1), Chunks(0))
	assert.Equal(t, uint64(1), Chunks(1))
	assert.Equal(t, uint64(1), Chunks(ChunkData))
	assert.Equal(t, uint64(2), Chunks(ChunkData+1))
	assert.Equal(t, uint64(1<<64-1)/ChunkData+1, Chunks(1<<64-1), "no overflow near the top")
}

func TestMarkerRoundTrip(t *testing.T) {
	m := Marker{Writer: 7, Seq: 9, Size: 1 << 20, Count: uint32(Chunks(1 << 20))}
	p := AppendMarker(nil, m)
	require.Len(t, p, MarkerLen)
	got, err := ParseMarker(p)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	p[25]++
	_, err = ParseMarker(p)
	assert.ErrorIs(t, err, ErrBadPacket, "count that does not match size")
	_, err = ParseMarker(p[:10])
	assert.ErrorIs(t, err, ErrBadPacket)
}

func TestAssembleWhole(t *testing.T) {
	for _, n := range []int{0, 1, ChunkData, ChunkData + 1, 5*ChunkData - 3, 1 << 20} {
		it := item(n, uint64(n))
		a := NewAssembler(1 << 30)
		var got []byte
		for i, p := range chunks(1, 2, it) {
			out, ev := a.Add(p)
			if ev == Complete {
				got = out
				assert.Equal(t, len(chunks(1, 2, it))-1, i)
			} else {
				assert.Equal(t, Progress, ev)
			}
		}
		assert.True(t, bytes.Equal(it, got), "size %d", n)
		assert.False(t, a.Active())
	}
}

func TestAssembleTornAndHeadless(t *testing.T) {
	a := NewAssembler(1 << 30)
	x := chunks(1, 1, item(3*ChunkData, 1))
	y := chunks(2, 1, item(2*ChunkData+5, 2))
	// Headless: the first chunk of x was taken by a reader that died.
	_, ev := a.Add(x[1])
	assert.Equal(t, Dropped, ev)
	_, ev = a.Add(x[2])
	assert.Equal(t, Dropped, ev)
	// Torn: x's writer died after two chunks; y starts.
	_, ev = a.Add(x[0])
	assert.Equal(t, Progress, ev)
	_, ev = a.Add(x[1])
	assert.Equal(t, Progress, ev)
	_, ev = a.Add(y[0])
	assert.Equal(t, Torn, ev)
	_, ev = a.Add(y[1])
	assert.Equal(t, Progress, ev)
	out, ev := a.Add(y[2])
	require.Equal(t, Complete, ev)
	assert.Equal(t, item(2*ChunkData+5, 2), out)
	// A chunk out of order breaks the item in progress.
	_, ev = a.Add(x[0])
	assert.Equal(t, Progress, ev)
	_, ev = a.Add(x[2])
	assert.Equal(t, Torn, ev)
	assert.False(t, a.Active())
}

func TestAssembleCorrupt(t *testing.T) {
	a := NewAssembler(1 << 30)
	x := chunks(1, 1, item(2*ChunkData, 3))
	x[0][100] ^= 1
	_, ev := a.Add(x[0])
	assert.Equal(t, Dropped, ev, "checksum")
	_, ev = a.Add(x[1])
	assert.Equal(t, Dropped, ev, "headless after the bad first chunk")
	small := NewAssembler(10)
	_, ev = small.Add(chunks(1, 1, item(100, 4))[0])
	assert.Equal(t, Dropped, ev, "over the size limit")
	_, ev = a.Add([]byte{KindChunk})
	assert.Equal(t, Dropped, ev, "short")
}

// FuzzAssembler feeds arbitrary packets: nothing panics, and a completed
// item always has the size its chunks announced.
func FuzzAssembler(f *testing.F) {
	for _, p := range chunks(5, 6, item(2*ChunkData+17, 5)) {
		f.Add(p)
	}
	f.Add(AppendMarker(nil, Marker{Writer: 1, Seq: 2, Size: 3, Count: 1}))
	f.Add([]byte{})
	f.Add([]byte{KindChunk, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		a := NewAssembler(1 << 20)
		for range 3 {
			out, ev := a.Add(p)
			if ev == Complete {
				c, err := ParseChunk(p)
				require.NoError(t, err)
				require.Equal(t, c.Size, uint64(len(out)))
			}
		}
		ParseMarker(p)
	})
}

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
	x[0][20] ^= 1 // the item's number
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

// fill reads packet p into the assembler the way readv(2) does: scattered
// over the buffers of Bufs, in order.
func fill(a *Assembler, p []byte) ([]byte, Event) {
	n := 0
	for _, b := range a.Bufs() {
		n += copy(b, p[n:])
	}
	return a.Filled(n)
}

// Packets read in place give the same items and events as Add, whatever
// storage the assembler was given to reuse (stale bytes never show).
func TestFillWhole(t *testing.T) {
	a := NewAssembler(1 << 30)
	for _, n := range []int{0, 1, ChunkData, ChunkData + 1, 5*ChunkData - 3, 1 << 20} {
		it := item(n, uint64(n))
		a.Reuse(bytes.Repeat([]byte{0xee}, n+7))
		ps := chunks(1, 2, it)
		var got []byte
		for i, p := range ps {
			out, ev := fill(a, p)
			if i < len(ps)-1 {
				require.Equal(t, Progress, ev)
				continue
			}
			require.Equal(t, Complete, ev)
			got = out
		}
		assert.True(t, bytes.Equal(it, got), "size %d", n)
		assert.False(t, a.Active())
	}
}

// A chunk that is not the one expected arrives in the buffers meant for the
// expected one: its data is taken from there whole. In particular the first
// chunk of the next item, after a writer died just before its item's short
// last chunk, is not cut to the short chunk's length (that would lose the
// next item too).
func TestFillTornAndHeadless(t *testing.T) {
	a := NewAssembler(1 << 30)
	x := chunks(1, 1, item(2*ChunkData+5, 1)) // a 5-byte last chunk
	y := chunks(2, 1, item(3*ChunkData, 2))
	z := chunks(3, 4, item(ChunkData+9, 3))
	// Headless remains of x, then x whole.
	_, ev := fill(a, x[1])
	assert.Equal(t, Dropped, ev)
	_, ev = fill(a, x[0])
	assert.Equal(t, Progress, ev)
	_, ev = fill(a, x[1])
	assert.Equal(t, Progress, ev)
	// x's writer dies before its last chunk; y starts where it would go.
	_, ev = fill(a, y[0])
	assert.Equal(t, Torn, ev)
	_, ev = fill(a, y[1])
	assert.Equal(t, Progress, ev)
	// A malformed packet mid-item is dropped; the item goes on.
	bad := bytes.Clone(y[2])
	bad[30] ^= 1
	_, ev = fill(a, bad)
	assert.Equal(t, Dropped, ev)
	_, ev = fill(a, []byte{KindChunk, 1})
	assert.Equal(t, Dropped, ev)
	out, ev := fill(a, y[2])
	require.Equal(t, Complete, ev)
	assert.Equal(t, item(3*ChunkData, 2), out)
	// A chunk of another item mid-item breaks both.
	_, ev = fill(a, z[0])
	assert.Equal(t, Progress, ev)
	_, ev = fill(a, x[1])
	assert.Equal(t, Torn, ev)
	_, ev = fill(a, z[1])
	assert.Equal(t, Dropped, ev)
	assert.False(t, a.Active())
	// And the next item arrives whole.
	for _, p := range x[:2] {
		_, ev = fill(a, p)
		assert.Equal(t, Progress, ev)
	}
	out, ev = fill(a, x[2])
	require.Equal(t, Complete, ev)
	assert.Equal(t, item(2*ChunkData+5, 1), out)
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
		for i := range 6 {
			var out []byte
			var ev Event
			if i%2 == 0 {
				out, ev = a.Add(p)
			} else {
				out, ev = fill(a, p)
			}
			if ev == Complete {
				c, err := ParseChunk(p)
				require.NoError(t, err)
				require.Equal(t, c.Size, uint64(len(out)))
			}
		}
		ParseMarker(p)
	})
}

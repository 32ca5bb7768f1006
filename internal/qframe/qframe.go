//go:build linux

// Package qframe holds the packet formats of the queue package: what one
// atomic pipe write carries, and how a large item is cut into chunks and put
// back together.
//
// Every packet is at most [PacketSize] bytes and is written with one write
// and read with one read on a packet-mode pipe (pipe2 with O_DIRECT), so a
// process killed at any instant leaves whole packets behind, never part of
// one. Byte 0 of a packet says what it is:
//
//	KindItem    an item whose encoding fits in one packet: byte 0, then the msgpack bytes
//	KindMarker  "the next large item is in the chunk pipe": writer, sequence, size, chunk count
//	KindChunk   one chunk of a large item, with a CRC-32C over its header and data
//
// A large item travels as [Chunks](size) chunk packets. The [Assembler] puts
// them back together and tells a whole item from a torn one (its writer died
// mid-item) or a headless one (the reader that took its first chunks died).
package qframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// PacketSize is the largest packet: PIPE_BUF on Linux, the size up to which
// pipe(7) promises that a write is atomic, and the size of one packet of a
// packet-mode pipe.
const PacketSize = 4096

// Packet kinds (byte 0 of every packet).
const (
	KindItem   byte = 1
	KindMarker byte = 2
	KindChunk  byte = 3
)

// MaxItemPayload is the largest item encoding that travels in one KindItem
// packet.
const MaxItemPayload = PacketSize - 1

// Layout of the fixed-size packets.
const (
	MarkerLen      = 1 + 8 + 8 + 8 + 4 // kind, writer, seq, size, count
	ChunkHeaderLen = 40                // kind, flags, 2 reserved, crc, writer, seq, size, index, count
	ChunkData      = PacketSize - ChunkHeaderLen
)

// ErrBadPacket is returned for a packet that is not a well-formed queue
// packet (wrong kind, length or checksum).
var ErrBadPacket = errors.New("qframe: malformed packet")

// Chunks returns the number of chunks an item of size bytes is cut into.
func Chunks(size uint64) uint64 {
	n := size / ChunkData
	if size%ChunkData != 0 || size == 0 {
		n++
	}
	return n
}

// Marker announces a large item in the chunk pipe. Writer identifies the
// writing process (a random number per process), Seq the item within it.
type Marker struct {
	Writer, Seq, Size uint64
	Count             uint32
}

// AppendMarker appends the marker packet for m to b.
func AppendMarker(b []byte, m Marker) []byte {
	b = append(b, KindMarker)
	b = binary.BigEndian.AppendUint64(b, m.Writer)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, m.Size)
	return binary.BigEndian.AppendUint32(b, m.Count)
}

// ParseMarker decodes a marker packet.
func ParseMarker(p []byte) (Marker, error) {
	if len(p) != MarkerLen || p[0] != KindMarker {
		return Marker{}, fmt.Errorf("%w: marker of %d bytes", ErrBadPacket, len(p))
	}
	m := Marker{
		Writer: binary.BigEndian.Uint64(p[1:]),
		Seq:    binary.BigEndian.Uint64(p[9:]),
		Size:   binary.BigEndian.Uint64(p[17:]),
		Count:  binary.BigEndian.Uint32(p[25:]),
	}
	if uint64(m.Count) != Chunks(m.Size) {
		return Marker{}, fmt.Errorf("%w: marker of %d bytes in %d chunks", ErrBadPacket, m.Size, m.Count)
	}
	return m, nil
}

// Chunk is one decoded chunk packet. Data aliases the packet.
type Chunk struct {
	Writer, Seq, Size uint64
	Index, Count      uint32
	Data              []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PutChunk writes the chunk packet for c into dst, which must hold
// ChunkHeaderLen+len(c.Data) bytes, and returns the packet length. c.Data
// may already sit at dst[ChunkHeaderLen:] (no copy is made then).
func PutChunk(dst []byte, c Chunk) int {
	n := ChunkHeaderLen + len(c.Data)
	dst = dst[:n]
	if len(c.Data) > 0 && &dst[ChunkHeaderLen] != &c.Data[0] {
		copy(dst[ChunkHeaderLen:], c.Data)
	}
	dst[0], dst[1], dst[2], dst[3] = KindChunk, 0, 0, 0
	binary.BigEndian.PutUint64(dst[8:], c.Writer)
	binary.BigEndian.PutUint64(dst[16:], c.Seq)
	binary.BigEndian.PutUint64(dst[24:], c.Size)
	binary.BigEndian.PutUint32(dst[32:], c.Index)
	binary.BigEndian.PutUint32(dst[36:], c.Count)
	binary.BigEndian.PutUint32(dst[4:], crc32.Checksum(dst[8:n], castagnoli))
	return n
}

// ParseChunk decodes and checks a chunk packet: kind, checksum, index within
// count, count matching size, and the data length the index calls for.
func ParseChunk(p []byte) (Chunk, error) {
	if len(p) < ChunkHeaderLen || len(p) > PacketSize || p[0] != KindChunk {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes", ErrBadPacket, len(p))
	}
	if crc32.Checksum(p[8:], castagnoli) != binary.BigEndian.Uint32(p[4:]) {
		return Chunk{}, fmt.Errorf("%w: chunk checksum", ErrBadPacket)
	}
	c := Chunk{
		Writer: binary.BigEndian.Uint64(p[8:]),
		Seq:    binary.BigEndian.Uint64(p[16:]),
		Size:   binary.BigEndian.Uint64(p[24:]),
		Index:  binary.BigEndian.Uint32(p[32:]),
		Count:  binary.BigEndian.Uint32(p[36:]),
		Data:   p[ChunkHeaderLen:],
	}
	if uint64(c.Count) != Chunks(c.Size) || c.Index >= c.Count {
		return Chunk{}, fmt.Errorf("%w: chunk %d of %d for %d bytes", ErrBadPacket, c.Index, c.Count, c.Size)
	}
	want := uint64(ChunkData)
	if c.Index == c.Count-1 {
		want = c.Size - uint64(c.Index)*ChunkData
	}
	if uint64(len(c.Data)) != want {
		return Chunk{}, fmt.Errorf("%w: chunk %d carries %d bytes, want %d", ErrBadPacket, c.Index, len(c.Data), want)
	}
	return c, nil
}

// Event says what Assembler.Add did with a chunk.
type Event int

const (
	// Progress: the chunk continues (or starts) the item being assembled.
	Progress Event = iota
	// Complete: the chunk finished an item; Add returned it.
	Complete
	// Dropped: the chunk could not be used (headless: its item's first
	// chunks were taken by a reader that died; or malformed; or over the
	// size limit) and was discarded.
	Dropped
	// Torn: the chunk starts a new item while another was being assembled,
	// whose writer therefore died mid-item; the partial item was discarded
	// and the new one started.
	Torn
)

// Assembler puts chunk packets back together into items. Its zero value is
// not usable; make one with NewAssembler.
type Assembler struct {
	max    uint64
	active bool
	writer uint64
	seq    uint64
	size   uint64
	next   uint32
	count  uint32
	buf    []byte
}

// NewAssembler returns an assembler that refuses items over max bytes.
func NewAssembler(max uint64) *Assembler { return &Assembler{max: max} }

// Active reports whether an item is partly assembled.
func (a *Assembler) Active() bool { return a.active }

// Reset forgets a partly assembled item (it is torn: its writer is gone).
func (a *Assembler) Reset() {
	a.active = false
	a.buf = nil
}

// Add feeds one packet read from the chunk pipe. When it completes an item it
// returns the item's bytes (owned by the caller) and Complete.
func (a *Assembler) Add(p []byte) ([]byte, Event) {
	c, err := ParseChunk(p)
	if err != nil || c.Size > a.max {
		return nil, Dropped
	}
	ev := Progress
	if c.Index == 0 {
		if a.active {
			ev = Torn
		}
		a.active = true
		a.writer, a.seq, a.size, a.count, a.next = c.Writer, c.Seq, c.Size, c.Count, 0
		a.buf = make([]byte, 0, c.Size)
	} else if !a.active || c.Writer != a.writer || c.Seq != a.seq || c.Index != a.next {
		// A chunk of another item than the one in progress: both are
		// broken, the partial one is discarded too.
		if a.active {
			a.Reset()
			return nil, Torn
		}
		return nil, Dropped
	}
	a.buf = append(a.buf, c.Data...)
	a.next++
	if a.next == a.count {
		out := a.buf
		a.Reset()
		return out, Complete
	}
	return nil, ev
}

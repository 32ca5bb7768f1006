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
//	KindChunk   one chunk of a large item: a header with a CRC-32C of its own, then data
//
// A large item travels as [Chunks](size) chunk packets. The [Assembler] puts
// them back together and tells a whole item from a torn one (its writer died
// mid-item) or a headless one (the reader that took its first chunks died).
//
// What makes an item whole is the header of each chunk, not a checksum of
// the data: the kernel moves a packet entirely or not at all, so a chunk's
// data is exactly what its writer wrote, and the header (writer, item,
// index, count, size) says which item and which place in it the data
// belongs to. The assembler takes an item only as the chunks 0 to count-1
// of one writer's item, in order, each of the length its index calls for.
// The header's CRC-32C guards that identification against packets no
// queue wrote (small items, single packets, never had a checksum either);
// checksumming the data as well cost a pass over every byte on each side
// (some 160 ns per packet, a sixth of the packet's system calls) for no
// case that the header checks do not already catch.
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

// PutChunkHeader writes the header of c's chunk packet into hdr (whose
// data, c.Data, follows it in the same write: see writev(2)).
func PutChunkHeader(hdr *[ChunkHeaderLen]byte, c Chunk) {
	hdr[0], hdr[1], hdr[2], hdr[3] = KindChunk, 0, 0, 0
	binary.BigEndian.PutUint64(hdr[8:], c.Writer)
	binary.BigEndian.PutUint64(hdr[16:], c.Seq)
	binary.BigEndian.PutUint64(hdr[24:], c.Size)
	binary.BigEndian.PutUint32(hdr[32:], c.Index)
	binary.BigEndian.PutUint32(hdr[36:], c.Count)
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(hdr[8:], castagnoli))
}

// PutChunk writes the chunk packet for c into dst, which must hold
// ChunkHeaderLen+len(c.Data) bytes, and returns the packet length.
func PutChunk(dst []byte, c Chunk) int {
	n := ChunkHeaderLen + len(c.Data)
	copy(dst[ChunkHeaderLen:n], c.Data)
	PutChunkHeader((*[ChunkHeaderLen]byte)(dst), c)
	return n
}

// ParseChunk decodes and checks a chunk packet: kind, header checksum,
// index within count, count matching size, and the data length the index
// calls for.
func ParseChunk(p []byte) (Chunk, error) {
	if len(p) < ChunkHeaderLen || len(p) > PacketSize {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes", ErrBadPacket, len(p))
	}
	c, err := parseHeader((*[ChunkHeaderLen]byte)(p))
	if err != nil {
		return Chunk{}, err
	}
	c.Data = p[ChunkHeaderLen:]
	if want := c.dataLen(); uint64(len(c.Data)) != want {
		return Chunk{}, fmt.Errorf("%w: chunk %d carries %d bytes, want %d", ErrBadPacket, c.Index, len(c.Data), want)
	}
	return c, nil
}

// parseHeader decodes and checks a chunk header (all but the data length).
func parseHeader(h *[ChunkHeaderLen]byte) (Chunk, error) {
	if h[0] != KindChunk {
		return Chunk{}, fmt.Errorf("%w: chunk of kind %d", ErrBadPacket, h[0])
	}
	if crc32.Checksum(h[8:], castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return Chunk{}, fmt.Errorf("%w: chunk checksum", ErrBadPacket)
	}
	c := Chunk{
		Writer: binary.BigEndian.Uint64(h[8:]),
		Seq:    binary.BigEndian.Uint64(h[16:]),
		Size:   binary.BigEndian.Uint64(h[24:]),
		Index:  binary.BigEndian.Uint32(h[32:]),
		Count:  binary.BigEndian.Uint32(h[36:]),
	}
	if uint64(c.Count) != Chunks(c.Size) || c.Index >= c.Count {
		return Chunk{}, fmt.Errorf("%w: chunk %d of %d for %d bytes", ErrBadPacket, c.Index, c.Count, c.Size)
	}
	return c, nil
}

// dataLen is the data length c's index calls for.
func (c *Chunk) dataLen() uint64 {
	if c.Index == c.Count-1 {
		return c.Size - uint64(c.Index)*ChunkData
	}
	return ChunkData
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
// not usable; make one with NewAssembler. Packets come either whole, through
// Add, or read in place: Bufs says where the next packet read goes, so that
// the data of the chunk expected next lands in the item itself, and Filled
// takes it from there.
type Assembler struct {
	max    uint64
	active bool
	writer uint64
	seq    uint64
	size   uint64
	next   uint32
	count  uint32
	buf    []byte // the item being assembled, buf[:size]
	spare  []byte // storage for the next item (Reuse), when large enough

	// Reading in place (Bufs, Filled).
	direct bool // the last Bufs pointed into buf
	hdr    [ChunkHeaderLen]byte
	pkt    *[PacketSize]byte // a whole packet when no item is in progress; the spill otherwise
	iov    [3][]byte
}

// NewAssembler returns an assembler that refuses items over max bytes.
func NewAssembler(max uint64) *Assembler { return &Assembler{max: max} }

// Active reports whether an item is partly assembled.
func (a *Assembler) Active() bool { return a.active }

// Reuse gives the assembler storage for the next item it starts (used if
// its capacity suffices). A completed item's bytes may come back this way
// once the caller is done with them: reading large items then allocates
// nothing.
func (a *Assembler) Reuse(b []byte) { a.spare = b }

// Reset forgets a partly assembled item (it is torn: its writer is gone).
func (a *Assembler) Reset() {
	a.active = false
	if cap(a.buf) > cap(a.spare) {
		a.spare = a.buf
	}
	a.buf = nil
}

// start begins the item of chunk c (index 0).
func (a *Assembler) start(c Chunk) {
	a.active = true
	a.writer, a.seq, a.size, a.count, a.next = c.Writer, c.Seq, c.Size, c.Count, 0
	if uint64(cap(a.spare)) >= c.Size {
		a.buf, a.spare = a.spare[:c.Size], nil
	} else {
		a.buf = make([]byte, c.Size)
	}
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
			a.Reset()
		}
		a.start(c)
	} else if !a.active || c.Writer != a.writer || c.Seq != a.seq || c.Index != a.next {
		// A chunk of another item than the one in progress: both are
		// broken, the partial one is discarded too.
		if a.active {
			a.Reset()
			return nil, Torn
		}
		return nil, Dropped
	}
	copy(a.buf[uint64(c.Index)*ChunkData:], c.Data)
	return a.advance(ev)
}

// advance counts the chunk just placed.
func (a *Assembler) advance(ev Event) ([]byte, Event) {
	a.next++
	if a.next == a.count {
		out := a.buf
		a.active, a.buf = false, nil
		return out, Complete
	}
	return nil, ev
}

// Bufs returns the buffers to read the next packet into, with one readv(2)
// (they hold a whole packet). While an item is in progress they are the
// chunk header, the place of the item's next chunk in the item itself, and
// room for the rest of a packet; then Filled finds the expected chunk's
// data in place, and the read is the only copy. A packet that turns out to
// be something else is put back together from the pieces.
func (a *Assembler) Bufs() [][]byte {
	if a.pkt == nil {
		a.pkt = new([PacketSize]byte)
	}
	if !a.active {
		a.direct = false
		a.iov[0] = a.pkt[:]
		return a.iov[:1]
	}
	a.direct = true
	off := uint64(a.next) * ChunkData
	dst := a.buf[off:min(off+ChunkData, a.size)]
	a.iov[0], a.iov[1], a.iov[2] = a.hdr[:], dst, a.pkt[:ChunkData-len(dst)]
	return a.iov[:3]
}

// Filled takes the packet of n bytes that was read into the buffers of the
// last Bufs, as Add does.
func (a *Assembler) Filled(n int) ([]byte, Event) {
	if n < 0 || n > PacketSize {
		return nil, Dropped
	}
	if !a.direct {
		return a.Add(a.pkt[:n])
	}
	a.direct = false
	dst := a.iov[1]
	if n == ChunkHeaderLen+len(dst) {
		c, err := parseHeader(&a.hdr)
		if err == nil && a.active && c.Writer == a.writer && c.Seq == a.seq && c.Size == a.size && c.Index == a.next && c.Index != 0 {
			return a.advance(Progress) // the expected chunk, already in place
		}
	}
	// Something else: a chunk of another item (its data went where the
	// expected chunk's will go, and is moved out before anything else
	// happens to the buffer), or a malformed packet.
	var p [PacketSize]byte
	k := copy(p[:], a.hdr[:min(n, ChunkHeaderLen)])
	if n > ChunkHeaderLen {
		k += copy(p[k:n], dst)
		copy(p[k:n], a.pkt[:])
	}
	return a.Add(p[:n])
}

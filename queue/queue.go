//go:build linux

package queue

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"github.com/mpgo/multiprocessing/internal/wire"
)

// Queue is a first-in first-out queue shared by processes (Python's
// multiprocessing.Queue). Items are values of T encoded with msgpack. It
// is safe for concurrent use by goroutines and processes, and is passed to
// a child process as a process argument (or a field of one).
type Queue[T any] struct {
	c *core
}

// New returns a queue that holds at most maxsize items; maxsize <= 0 means
// unbounded: Put never blocks.
func New[T any](maxsize int, opts ...Option) (*Queue[T], error) {
	c, err := newCore(kindQueue, maxsize, opts)
	if err != nil {
		return nil, err
	}
	return &Queue[T]{c: c}, nil
}

var encPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encode encodes v into a packet: kind byte and msgpack. large tells that it
// does not fit one packet; then pkt is the msgpack bytes alone. Either way
// pkt lives in buf, which put takes over (see releaseEnc). A buffer that
// held a large item is taken first: encoding a large item into a buffer
// of the right size allocates nothing.
func (c *core) encode(v any) (pkt []byte, large bool, buf *bytes.Buffer, err error) {
	b := c.keptEnc()
	if b == nil {
		b = encPool.Get().(*bytes.Buffer)
	}
	b.Reset()
	b.WriteByte(qframe.KindItem)
	if err := wire.AppendTo(b, nil, v); err != nil {
		c.releaseEnc(b)
		return nil, false, nil, fmt.Errorf("queue: put: %w", err)
	}
	p := b.Bytes()
	if len(p) <= qframe.PacketSize {
		return p, false, b, nil
	}
	if len(p)-1 > MaxItemSize {
		c.releaseEnc(b)
		return nil, false, nil, fmt.Errorf("queue: put: %d-byte item over the %d-byte limit: %w", len(p)-1, MaxItemSize, ErrTooLarge)
	}
	return p[1:], true, b, nil
}

// keepMax bounds the buffers a queue handle keeps for the next large item:
// two encodings (one being written, one waiting, which MaxUnwrittenBytes
// allows) and one item being read. Allocating 1 MiB per item cost more
// than the item's copies (clearing the memory, its page faults, and the
// garbage collections it triggers); buffers of larger items are not kept,
// so that a handle that once carried a huge item does not hold its memory.
const keepMax = 8 << 20

// keptEnc returns a kept encoding buffer, or nil.
func (c *core) keptEnc() *bytes.Buffer {
	for i := range c.encKeep {
		// A load first: small items, where no buffer is kept, pay no
		// atomic exchange.
		if c.encKeep[i].Load() == nil {
			continue
		}
		if b := c.encKeep[i].Swap(nil); b != nil {
			return b
		}
	}
	return nil
}

// releaseEnc gives an encoding buffer back once its item is written (or
// dropped): kept for the next large item when it held one, else pooled.
func (c *core) releaseEnc(b *bytes.Buffer) {
	if b.Cap() <= 2*qframe.PacketSize {
		encPool.Put(b)
		return
	}
	if b.Cap() > keepMax {
		return
	}
	for i := range c.encKeep {
		if c.encKeep[i].CompareAndSwap(nil, b) {
			return
		}
	}
}

// keptItem returns kept storage for a large item being read, or nil.
func (c *core) keptItem() []byte {
	if p := c.itemKeep.Swap(nil); p != nil {
		return *p
	}
	return nil
}

// releaseItem keeps a large item's bytes, once decoded, for the next one.
func (c *core) releaseItem(b []byte) {
	if cap(b) <= keepMax {
		c.itemKeep.Store(&b)
	}
}

func decodeInto[T any](v *T) func([]byte) error {
	return func(b []byte) error { return wire.Unmarshal(b, nil, v) }
}

// Put adds v to the queue. A value that cannot be encoded is an error and
// nothing is added. A bounded queue waits while it holds maxsize items; a
// cancelled or expired ctx ends the wait with ctx's error and nothing added.
//
// When Put returns the item is in the pipe, where every process sees it,
// except when the pipe is full (about 256 waiting items), the item's
// encoding exceeds 4 KiB, or earlier items of this process are still being
// written: then this process writes it, in order, as readers make room
// (its next Put first, or a goroutine when no Put comes). Len counts it
// from the start. Close and Flush wait for those
// items; a worker process waits for them before it exits. While this
// process holds MaxUnwritten such items (or MaxUnwrittenBytes), Put waits
// for readers to take some, unless no process has read the queue for
// PutStall.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	pkt, large, buf, err := q.c.encode(v)
	if err != nil {
		return err
	}
	return q.c.put(ctx, pkt, buf, large, true)
}

// TryPut adds v without waiting: ErrFull when a bounded queue holds maxsize
// items, or when this process holds MaxUnwritten items it could not write
// yet (and readers are at work: see MaxUnwritten).
func (q *Queue[T]) TryPut(v T) error {
	pkt, large, buf, err := q.c.encode(v)
	if err != nil {
		return err
	}
	return q.c.put(context.Background(), pkt, buf, large, false)
}

// Get removes and returns the oldest item, waiting for one until ctx ends
// (then it returns ctx's error and the queue is unchanged). An item that
// does not decode into T is taken all the same: Get returns the error and
// the queue stays usable.
//
// A deadline covers the wait for an item. An item over 4 KiB that has
// begun to arrive is read to its end while its writer keeps sending, so
// that it is not lost for everybody; its writer's death ends it at once.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	var v T
	err := q.c.get(ctx, true, decodeInto(&v))
	return v, err
}

// TryGet removes and returns the oldest item without waiting: ErrEmpty when
// there is none.
func (q *Queue[T]) TryGet() (T, error) {
	var v T
	err := q.c.get(context.Background(), false, decodeInto(&v))
	return v, err
}

// Len returns the number of items put and not yet taken, across processes
// (Python's qsize). It is approximate while other processes put and get,
// and it counts items still buffered by their writers; the items of a
// writer that died before it wrote them leave the count when Len runs. It
// may count one item less than there is after a death, never more. It is 0
// once the queue is closed in this process.
func (q *Queue[T]) Len() int {
	if !q.c.enter() {
		return 0
	}
	defer q.c.leave()
	return q.c.length()
}

// Empty reports whether Len is 0.
func (q *Queue[T]) Empty() bool { return q.Len() == 0 }

// Full reports whether a bounded queue holds maxsize items.
func (q *Queue[T]) Full() bool {
	return q.c.maxsize > 0 && q.Len() >= int(q.c.maxsize)
}

// Flush waits until the items this process buffered are in the pipe (and an
// item over 4 KiB has been taken by a reader), or until ctx ends. A main
// process calls it, or Close, before it exits.
func (q *Queue[T]) Flush(ctx context.Context) error {
	if !q.c.enter() {
		return ErrClosed
	}
	defer q.c.leave()
	if err := q.c.flush(ctx, 0); err != nil {
		return fmt.Errorf("queue: flush: %w", err)
	}
	return nil
}

// Close says this process puts no more: it waits for the items it buffered
// to reach the pipe while readers make progress (see WithFlushTimeout),
// then releases this process's descriptors and mapping. Operations in this
// process then return ErrClosed; other processes are unaffected. A second
// Close is a no-op. Items that could not be flushed are counted in an error
// matching ErrNotFlushed.
func (q *Queue[T]) Close() error { return q.c.close() }

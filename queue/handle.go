//go:build linux

package queue

import (
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Queues travel to child processes inside process arguments as wire
// handles. msgpack maps an extension number to one Go type, so the types
// registered are the [any] instantiations; every other instantiation
// encodes and decodes itself through them (EncodeMsgpack/DecodeMsgpack).
// In a field of a queue type (*Queue[Job]) a queue arrives as that type;
// in an interface-typed field it arrives as *Queue[any] (*Joinable[any],
// *Simple[any]): the element type does not travel.
func init() {
	wire.RegisterHandle(wire.ExtQueue, func(q *Queue[any], fds *wire.Files) ([]byte, error) {
		return q.c.encodeState(fds)
	}, func(q *Queue[any], state []byte, fds *wire.Files) error {
		c, err := decodeCore(kindQueue, state, fds)
		q.c = c
		return err
	})
	wire.RegisterHandle(wire.ExtJoinable, func(q *Joinable[any], fds *wire.Files) ([]byte, error) {
		return q.c.encodeState(fds)
	}, func(q *Joinable[any], state []byte, fds *wire.Files) error {
		c, err := decodeCore(kindJoinable, state, fds)
		q.c = c
		return err
	})
	wire.RegisterHandle(wire.ExtSimple, func(q *Simple[any], fds *wire.Files) ([]byte, error) {
		return q.c.encodeState(fds)
	}, func(q *Simple[any], state []byte, fds *wire.Files) error {
		c, err := decodeCore(kindSimple, state, fds)
		q.c = c
		return err
	})
}

// EncodeMsgpack lets a queue travel inside a process argument; it is not
// meant to be called directly.
func (q *Queue[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	if q == nil {
		return enc.EncodeNil()
	}
	return enc.Encode(&Queue[any]{c: q.c})
}

// DecodeMsgpack rebuilds a queue received inside a process argument.
func (q *Queue[T]) DecodeMsgpack(dec *msgpack.Decoder) error {
	var h *Queue[any]
	if err := dec.Decode(&h); err != nil {
		return err
	}
	if h != nil {
		q.c = h.c
	}
	return nil
}

// EncodeMsgpack lets a queue travel inside a process argument; it is not
// meant to be called directly.
func (q *Joinable[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	if q == nil {
		return enc.EncodeNil()
	}
	return enc.Encode(&Joinable[any]{Queue[any]{c: q.c}})
}

// DecodeMsgpack rebuilds a queue received inside a process argument.
func (q *Joinable[T]) DecodeMsgpack(dec *msgpack.Decoder) error {
	var h *Joinable[any]
	if err := dec.Decode(&h); err != nil {
		return err
	}
	if h != nil {
		q.c = h.c
	}
	return nil
}

// EncodeMsgpack lets a queue travel inside a process argument; it is not
// meant to be called directly.
func (q *Simple[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	if q == nil {
		return enc.EncodeNil()
	}
	return enc.Encode(&Simple[any]{c: q.c})
}

// DecodeMsgpack rebuilds a queue received inside a process argument.
func (q *Simple[T]) DecodeMsgpack(dec *msgpack.Decoder) error {
	var h *Simple[any]
	if err := dec.Decode(&h); err != nil {
		return err
	}
	if h != nil {
		q.c = h.c
	}
	return nil
}

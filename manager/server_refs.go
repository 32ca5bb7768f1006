//go:build linux

package manager

import (
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/internal/wire"
)

// Reference counting and value storage. An object lives while something
// refers to it: each connection holds a count of the references the server
// granted it (sconn.holds), a stored value holds one reference to every
// object its proxies point to, a name holds one, and a transfer token (a
// proxy in transit to another process) holds one until the receiver
// redeems it or the exporting connection closes. When the count reaches
// zero the object is freed, and with it the references its own values
// held (see drain). Everything here runs with s.mu held.

// token is a transfer token: a reference held for a proxy in transit.
type token struct {
	id    uint64
	obj   *object
	owner *sconn
}

// grantObject gives c one reference to o. Caller holds s.mu.
func (s *server) grantObject(c *sconn, o *object) {
	o.refs++
	c.holds[o.id]++
}

func (s *server) handleDecref(c *sconn, r *sreq) {
	if len(r.args) != 1 {
		return
	}
	n, _, err := msgp.ReadUint(r.args[0])
	if err != nil {
		return
	}
	// A connection gives back at most what it holds: no client can free
	// what others still use.
	have := c.holds[r.obj]
	if uint64(have) < n {
		n = uint64(have)
	}
	if n == 0 {
		return
	}
	if have == int(n) {
		delete(c.holds, r.obj)
	} else {
		c.holds[r.obj] = have - int(n)
	}
	if o := s.objects[r.obj]; o != nil {
		s.decref(o, int(n))
	}
}

// export makes a transfer token for o: a reference held for a proxy of
// o on its way to another process, until the receiver redeems it or c
// closes.
func (s *server) export(c *sconn, r *sreq, o *object) {
	s.nextTok++
	t := &token{id: s.nextTok, obj: o, owner: c}
	s.tokens[t.id] = t
	c.tokens[t.id] = t
	o.refs++
	c.ok(r.id, msgp.AppendUint(nil, t.id), nil)
}

func (s *server) redeem(c *sconn, r *sreq) {
	if len(r.args) != 2 {
		c.fail(r.id, codeBadRequest, "redeem: want token, kind")
		return
	}
	tok, _, err1 := msgp.ReadUint(r.args[0])
	kd, _, err2 := msgp.ReadUint(r.args[1])
	if err1 != nil || err2 != nil {
		c.fail(r.id, codeBadRequest, "redeem: bad arguments")
		return
	}
	o := s.objects[r.obj]
	if o == nil {
		c.fail(r.id, codeNoObject, fmt.Sprintf("object %d was freed before this process took its reference", r.obj))
		return
	}
	if uint64(o.kind) != kd {
		c.fail(r.id, codeWrongKind, fmt.Sprintf("object %d is a %s", r.obj, describe(o)))
		return
	}
	if t := s.tokens[tok]; t != nil && t.obj == o {
		// The token's reference becomes this connection's.
		delete(s.tokens, tok)
		delete(t.owner.tokens, tok)
		c.holds[o.id]++
	} else {
		s.grantObject(c, o)
	}
	c.ok(r.id, nil, []uint64{o.id})
}

// decref drops n references to o and frees it at zero. Freeing is
// deferred to drain so that it never runs in the middle of an operation
// on o. Caller holds s.mu.
func (s *server) decref(o *object, n int) {
	o.refs -= n
	if o.refs <= 0 && s.objects[o.id] == o {
		delete(s.objects, o.id)
		s.freeing = append(s.freeing, o)
	}
}

// drain frees the objects whose count reached zero, and what only they
// referred to. It uses a work list, not recursion: a long chain of nested
// objects must not exhaust the stack. Caller holds s.mu.
func (s *server) drain() {
	for len(s.freeing) > 0 {
		o := s.freeing[len(s.freeing)-1]
		s.freeing = s.freeing[:len(s.freeing)-1]
		s.free(o)
	}
}

// free releases what a freed object holds.
func (s *server) free(o *object) {
	switch {
	case o.dict != nil:
		o.dict.each(func(_ string, v []byte) { s.releaseValue(v) })
		o.dict = newODict()
	case o.items != nil:
		for _, v := range o.items {
			s.releaseValue(v)
		}
		o.items = nil
	case o.val != nil:
		s.releaseValue(o.val)
		o.val = nil
	case o.queue != nil:
		for _, v := range o.queue.items {
			s.releaseValue(v)
		}
		o.queue.items = nil
	case o.cond != nil:
		s.decref(o.cond.lock, 1)
	case o.custom != nil:
		o.custom.value = nil
	}
	// No call can be parked here: a parked call's connection holds a
	// reference for as long as the call runs.
}

// storeValue validates a value about to be stored, counts the references
// of the proxies inside it, and returns a private copy (the request buffer
// is not kept). Caller holds s.mu.
func (s *server) storeValue(v []byte) ([]byte, error) {
	var objs []*object
	n, err := skipValue(v, func(payload []byte) error {
		r, err := parseRef(payload)
		if err != nil {
			return err
		}
		if r.server != s.id {
			return nil // another manager's object: the token in it keeps it
		}
		o := s.objects[r.id]
		if o == nil {
			return fmt.Errorf("%w: object %d", ErrNoObject, r.id)
		}
		objs = append(objs, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n != len(v) {
		return nil, errMalformed
	}
	for _, o := range objs {
		o.refs++
	}
	out := canonical(v)
	if len(out) > 0 && &out[0] == &v[0] {
		out = append([]byte(nil), v...) // the request buffer is not kept
	}
	return out, nil
}

// storeArray stores each element of a msgpack array.
func (s *server) storeArray(b []byte) ([][]byte, error) {
	n, pos, err := msgp.ReadArrayHeader(b)
	if err != nil {
		return nil, errMalformed
	}
	items := make([][]byte, 0, min(n, 1024))
	for range n {
		k, err := skipValue(b[pos:], nil)
		if err != nil {
			return nil, err
		}
		v, err := s.storeValue(b[pos : pos+k])
		if err != nil {
			for _, v := range items {
				s.releaseValue(v)
			}
			return nil, err
		}
		items = append(items, v)
		pos += k
	}
	if pos != len(b) {
		for _, v := range items {
			s.releaseValue(v)
		}
		return nil, errMalformed
	}
	return items, nil
}

// releaseValue drops the references of a value leaving the server.
// Caller holds s.mu.
func (s *server) releaseValue(v []byte) {
	s.freed += len(v)
	if !mayHoldProxy(v) {
		return
	}
	skipValue(v, func(payload []byte) error {
		if r, err := parseRef(payload); err == nil && r.server == s.id {
			if o := s.objects[r.id]; o != nil {
				s.decref(o, 1)
			}
		}
		return nil
	})
}

// grantValue gives c a reference to each object a value being returned to
// it holds proxies to, and returns their ids for the reply. Caller holds
// s.mu.
func (s *server) grantValue(c *sconn, v []byte, grants []uint64) []uint64 {
	if !mayHoldProxy(v) {
		return grants
	}
	skipValue(v, func(payload []byte) error {
		if r, err := parseRef(payload); err == nil && r.server == s.id {
			if o := s.objects[r.id]; o != nil {
				s.grantObject(c, o)
				grants = append(grants, o.id)
			}
		}
		return nil
	})
	return grants
}

// mayHoldProxy is a cheap filter: an encoded proxy is an ext8/16/32 header
// followed by the proxy extension type. Most values have none and skip the
// walk.
func mayHoldProxy(v []byte) bool {
	for i := 0; i < len(v); i++ {
		var at int
		switch v[i] {
		case 0xc7:
			at = i + 2
		case 0xc8:
			at = i + 3
		case 0xc9:
			at = i + 5
		default:
			continue
		}
		if at < len(v) && int8(v[at]) == wire.ExtProxy {
			return true
		}
	}
	return false
}

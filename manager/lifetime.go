//go:build linux

package manager

import "sync"

// Object lifetime.
//
// The server counts references to each object. A reference is held by:
//
//   - a connection: each time the server hands a connection an object (it
//     created it, found it by name, returned a value holding a proxy to it,
//     or redeemed a transfer token for it) that connection's count for the
//     object goes up by one ("a grant"); the client gives counts back with
//     opDecref. When a connection closes (its process exited or died) the
//     server drops everything it held.
//   - a stored value: a value in a Dict, List, Namespace, Value, Array or
//     Queue that holds proxies to objects of the same server refers to
//     each of them until it is overwritten or removed, or its container is
//     freed.
//   - a transfer token: a proxy encoded for another process (a process
//     argument, a pipe, a queue, another manager's value) carries a token
//     that keeps the object alive until the receiver redeems it by its
//     first use, or until the sending connection closes.
//   - a name: Named objects live until the server stops.
//
// An object with no reference is freed, and the values it held drop their
// references in turn. Reference cycles through stored values are never
// freed (as with any reference count).
//
// On the client, the proxies of one connection are counted per object
// ("live"), and the grants the connection received are kept ("held") while
// some proxy is live. A proxy is dropped by Close or, failing that, when
// the garbage collector finds it unreachable (runtime.AddCleanup). When
// the last live proxy of an object goes, the held grants go back to the
// server in one opDecref.
//
// Grants and proxies are matched only after a reply's values were decoded
// (settle): a grant that arrives while no proxy is live goes back at once,
// unless the reply's own decoding just made one. This keeps the count
// right in the race where the last proxy is dropped while a reply carrying
// the same object is in flight: that reply's grant is not given back with
// the older ones.
type refTable struct {
	mu   sync.Mutex
	live map[uint64]int32
	held map[uint64]int32
}

func (t *refTable) init() {
	t.live = make(map[uint64]int32)
	t.held = make(map[uint64]int32)
}

// adopt counts a new live proxy for id.
func (c *client) adopt(id uint64) {
	c.refs.mu.Lock()
	c.refs.live[id]++
	c.refs.mu.Unlock()
}

// settle accounts for the grants of a reply once its values are decoded:
// kept while a proxy of that object is live, given back otherwise.
func (c *client) settle(grants []uint64) {
	if len(grants) == 0 {
		return
	}
	var back map[uint64]int32
	c.refs.mu.Lock()
	for _, id := range grants {
		if c.refs.live[id] > 0 {
			c.refs.held[id]++
			continue
		}
		if back == nil {
			back = make(map[uint64]int32)
		}
		back[id]++
	}
	c.refs.mu.Unlock()
	for id, n := range back {
		c.decref(id, n)
	}
}

// drop uncounts a live proxy for id; the last one gives back the grants.
func (c *client) drop(id uint64) {
	c.refs.mu.Lock()
	c.refs.live[id]--
	if c.refs.live[id] > 0 {
		c.refs.mu.Unlock()
		return
	}
	n := c.refs.held[id]
	delete(c.refs.live, id)
	delete(c.refs.held, id)
	c.refs.mu.Unlock()
	if n > 0 {
		c.decref(id, n)
	}
}

func (c *client) decref(id uint64, n int32) {
	r := c.notice(opDecref, id, 1)
	r.uint(uint64(n))
	c.post(r)
}

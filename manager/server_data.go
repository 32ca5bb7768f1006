//go:build linux

package manager

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// odict is an insertion-ordered map of encoded keys to encoded values, so
// that Keys and Items come back in the order Python's dict gives.
type odict struct {
	index map[string]int
	keys  []string // "" marks a deleted slot (no encoded key is empty)
	vals  [][]byte
	dead  int
}

func newODict() *odict { return &odict{index: make(map[string]int)} }

func (d *odict) get(k []byte) ([]byte, bool) {
	i, ok := d.index[string(k)]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// set stores v under k and returns the value it replaced.
func (d *odict) set(k, v []byte) (old []byte) {
	if i, ok := d.index[string(k)]; ok {
		old = d.vals[i]
		d.vals[i] = v
		return old
	}
	ks := string(k)
	d.index[ks] = len(d.keys)
	d.keys = append(d.keys, ks)
	d.vals = append(d.vals, v)
	return nil
}

func (d *odict) del(k []byte) ([]byte, bool) {
	i, ok := d.index[string(k)]
	if !ok {
		return nil, false
	}
	old := d.vals[i]
	delete(d.index, string(k))
	d.keys[i], d.vals[i] = "", nil
	d.dead++
	if d.dead > 32 && d.dead > len(d.keys)/2 {
		d.compact()
	}
	return old, true
}

func (d *odict) compact() {
	j := 0
	for i, k := range d.keys {
		if k == "" {
			continue
		}
		d.keys[j], d.vals[j] = k, d.vals[i]
		d.index[k] = j
		j++
	}
	clear(d.keys[j:])
	clear(d.vals[j:])
	d.keys, d.vals, d.dead = d.keys[:j], d.vals[:j], 0
}

func (d *odict) len() int { return len(d.index) }

func (d *odict) each(f func(k string, v []byte)) {
	for i, k := range d.keys {
		if k != "" {
			f(k, d.vals[i])
		}
	}
}

// checkKey refuses keys that hold proxies: a key is compared by its bytes
// and is not reference-counted.
func checkKey(k []byte) error {
	if mayHoldProxy(k) {
		if _, err := skipValue(k, func([]byte) error { return errProxyKey }); err != nil {
			return err
		}
	}
	return nil
}

var errProxyKey = errors.New("a proxy cannot be a key")

func args(r *sreq, n int) bool { return len(r.args) == n }

// valueError maps a storeValue error to a reply.
func valueError(err error) (int, string) {
	if errors.Is(err, ErrNoObject) {
		return codeNoObject, err.Error()
	}
	return codeBadRequest, "value: " + err.Error()
}

func (s *server) dictOp(c *sconn, r *sreq, o *object) (int, string) {
	d := o.dict
	if len(r.args) > 0 && r.op != opUpdate {
		if err := checkKey(r.args[0]); err != nil {
			return bad(err.Error())
		}
		r.args[0] = canonical(r.args[0])
	}
	switch r.op {
	case opGet:
		if !args(r, 1) {
			return bad("Get: want key")
		}
		v, ok := d.get(r.args[0])
		if !ok {
			c.reply(r.id, codeMissing, nil, nil)
			return codeOK, ""
		}
		c.ok(r.id, v, s.grantValue(c, v, nil))
	case opSet:
		if !args(r, 2) {
			return bad("Set: want key, value")
		}
		v, err := s.storeValue(r.args[1])
		if err != nil {
			return valueError(err)
		}
		if old := d.set(r.args[0], v); old != nil {
			s.releaseValue(old)
		}
		c.ok(r.id, nil, nil)
	case opDelete:
		if !args(r, 1) {
			return bad("Delete: want key")
		}
		if old, ok := d.del(r.args[0]); ok {
			s.releaseValue(old)
		} else if o.kind == kindNamespace {
			return codeNoAttribute, stringArg(r.args[0])
		}
		c.ok(r.id, nil, nil)
	case opLen:
		c.ok(r.id, msgp.AppendUint(nil, uint64(d.len())), nil)
	case opKeys:
		b := msgp.AppendArrayHeader(nil, d.len())
		d.each(func(k string, _ []byte) { b = append(b, k...) })
		c.ok(r.id, b, nil)
	case opItems:
		b := msgp.AppendMapHeader(nil, d.len())
		var grants []uint64
		d.each(func(k string, v []byte) {
			b = append(append(b, k...), v...)
			grants = s.grantValue(c, v, grants)
		})
		c.ok(r.id, b, grants)
	case opUpdate:
		if !args(r, 1) {
			return bad("Update: want a map")
		}
		if code, msg := s.dictUpdate(d, r.args[0]); code != codeOK {
			return code, msg
		}
		c.ok(r.id, nil, nil)
	case opClear:
		d.each(func(_ string, v []byte) { s.releaseValue(v) })
		*d = *newODict()
		c.ok(r.id, nil, nil)
	case opSetDefault:
		if !args(r, 2) {
			return bad("SetDefault: want key, value")
		}
		v, ok := d.get(r.args[0])
		if !ok {
			var err error
			if v, err = s.storeValue(r.args[1]); err != nil {
				return valueError(err)
			}
			d.set(r.args[0], v)
		}
		c.ok(r.id, v, s.grantValue(c, v, nil))
	case opPop:
		if !args(r, 1) {
			return bad("Pop: want key")
		}
		v, ok := d.del(r.args[0])
		if !ok {
			c.reply(r.id, codeMissing, nil, nil)
			return codeOK, ""
		}
		grants := s.grantValue(c, v, nil)
		s.releaseValue(v)
		c.ok(r.id, v, grants)
	case opAdd:
		if !args(r, 2) && !args(r, 3) {
			return bad("Add: want key, delta, type")
		}
		cur, _ := d.get(r.args[0])
		sum, code, msg := add(cur, r.args[1:])
		if code != codeOK {
			return code, msg
		}
		if old := d.set(r.args[0], sum); old != nil {
			s.releaseValue(old)
		}
		c.ok(r.id, sum, nil)
	case opCAS:
		if !args(r, 4) {
			return bad("CompareAndSwap: want key, old, new, oldIsZero")
		}
		cur, ok := d.get(r.args[0])
		oldIsZero, _, _ := msgp.ReadBool(r.args[3])
		if !(ok && bytes.Equal(cur, canonical(r.args[1])) || !ok && oldIsZero) {
			c.ok(r.id, msgp.AppendBool(nil, false), nil)
			return codeOK, ""
		}
		v, err := s.storeValue(r.args[2])
		if err != nil {
			return valueError(err)
		}
		if old := d.set(r.args[0], v); old != nil {
			s.releaseValue(old)
		}
		c.ok(r.id, msgp.AppendBool(nil, true), nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

// dictUpdate stores every pair of the msgpack map m in d, all or nothing:
// every key and value is checked and stored before the first one goes in.
func (s *server) dictUpdate(d *odict, m []byte) (int, string) {
	n, pos, err := msgp.ReadMapHeader(m)
	if err != nil {
		return bad("Update: want a map")
	}
	pairs := make([]kvPair, 0, min(n, 1024))
	for range n {
		kl, _ := skipValue(m[pos:], nil)
		k := m[pos : pos+kl]
		pos += kl
		vl, _ := skipValue(m[pos:], nil)
		if err := checkKey(k); err != nil {
			s.releasePairs(pairs)
			return bad(err.Error())
		}
		k = canonical(k)
		v, err := s.storeValue(m[pos : pos+vl])
		if err != nil {
			s.releasePairs(pairs)
			return valueError(err)
		}
		pos += vl
		pairs = append(pairs, kvPair{k, v})
	}
	for _, p := range pairs {
		if old := d.set(p.k, p.v); old != nil {
			s.releaseValue(old)
		}
	}
	return codeOK, ""
}

type kvPair struct{ k, v []byte }

func (s *server) releasePairs(pairs []kvPair) {
	for _, p := range pairs {
		s.releaseValue(p.v)
	}
}

// add is Add on a stored value: the sum, encoded, or an error reply. args
// are the delta and, optionally, the numType the sum must fit.
func add(cur []byte, args [][]byte) ([]byte, int, string) {
	if msgp.NextType(cur) == msgp.NilType {
		cur = nil
	}
	t := numAny
	if len(args) > 1 {
		n, _, err := msgp.ReadUint(args[1])
		if err != nil || n >= uint64(numEnd) {
			return nil, codeBadRequest, "Add: bad type"
		}
		t = numType(n)
	}
	sum, err := addTyped(cur, args[0], t)
	switch {
	case errors.Is(err, errOverflow):
		return nil, codeOverflow, "the sum does not fit the value's type"
	case err != nil:
		return nil, codeNotNumber, ""
	}
	return sum, codeOK, ""
}

// index resolves a Python-style index (negative counts from the end).
func index(b []byte, n int) (int, bool) {
	i, _, err := msgp.ReadInt(b)
	if err != nil {
		return 0, false
	}
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		return 0, false
	}
	return int(i), true
}

func (s *server) listOp(c *sconn, r *sreq, o *object) (int, string) {
	switch r.op {
	case opAppend:
		if !args(r, 1) {
			return bad("Append: want value")
		}
		v, err := s.storeValue(r.args[0])
		if err != nil {
			return valueError(err)
		}
		o.items = append(o.items, v)
		c.ok(r.id, nil, nil)
	case opExtend:
		if !args(r, 1) {
			return bad("Extend: want array")
		}
		items, err := s.storeArray(r.args[0])
		if err != nil {
			return valueError(err)
		}
		o.items = append(o.items, items...)
		c.ok(r.id, nil, nil)
	case opInsert:
		if !args(r, 2) {
			return bad("Insert: want index, value")
		}
		i, _, err := msgp.ReadInt(r.args[0])
		if err != nil {
			return bad("Insert: bad index")
		}
		// As Python's list.insert: out-of-range indexes clamp.
		n := int64(len(o.items))
		if i < 0 {
			i = max(i+n, 0)
		}
		i = min(i, n)
		v, err := s.storeValue(r.args[1])
		if err != nil {
			return valueError(err)
		}
		o.items = append(o.items, nil)
		copy(o.items[i+1:], o.items[i:])
		o.items[i] = v
		c.ok(r.id, nil, nil)
	case opGet, opSet, opPop:
		if len(r.args) < 1 {
			return bad("want index")
		}
		i, ok := index(r.args[0], len(o.items))
		if !ok {
			return codeIndex, fmt.Sprintf("index %s, length %d", numText(r.args[0]), len(o.items))
		}
		switch r.op {
		case opGet:
			v := o.items[i]
			c.ok(r.id, v, s.grantValue(c, v, nil))
		case opSet:
			if !args(r, 2) {
				return bad("Set: want index, value")
			}
			v, err := s.storeValue(r.args[1])
			if err != nil {
				return valueError(err)
			}
			old := o.items[i]
			o.items[i] = v
			s.releaseValue(old)
			c.ok(r.id, nil, nil)
		case opPop:
			v := o.items[i]
			copy(o.items[i:], o.items[i+1:])
			o.items[len(o.items)-1] = nil
			o.items = o.items[:len(o.items)-1]
			grants := s.grantValue(c, v, nil)
			s.releaseValue(v)
			c.ok(r.id, v, grants)
		}
	case opRemove, opIndex:
		if !args(r, 1) {
			return bad("want value")
		}
		want := canonical(r.args[0])
		for i, v := range o.items {
			if bytes.Equal(v, want) {
				if r.op == opIndex {
					c.ok(r.id, msgp.AppendUint(nil, uint64(i)), nil)
					return codeOK, ""
				}
				copy(o.items[i:], o.items[i+1:])
				o.items[len(o.items)-1] = nil
				o.items = o.items[:len(o.items)-1]
				s.releaseValue(v)
				c.ok(r.id, nil, nil)
				return codeOK, ""
			}
		}
		return codeNotFound, ""
	case opLen:
		c.ok(r.id, msgp.AppendUint(nil, uint64(len(o.items))), nil)
	case opSlice:
		s.sliceReply(c, r.id, o.items)
	case opClear:
		for _, v := range o.items {
			s.releaseValue(v)
		}
		o.items = nil
		c.ok(r.id, nil, nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

func (s *server) sliceReply(c *sconn, id uint64, items [][]byte) {
	size := 5
	for _, v := range items {
		size += len(v)
	}
	b := msgp.AppendArrayHeader(make([]byte, 0, size), len(items))
	var grants []uint64
	for _, v := range items {
		b = append(b, v...)
		grants = s.grantValue(c, v, grants)
	}
	c.ok(id, b, grants)
}

func numText(b []byte) string {
	i, _, err := msgp.ReadInt(b)
	if err != nil {
		return "?"
	}
	return fmt.Sprint(i)
}

func (s *server) valueOp(c *sconn, r *sreq, o *object) (int, string) {
	switch r.op {
	case opGet:
		c.ok(r.id, o.val, s.grantValue(c, o.val, nil))
	case opSet:
		if !args(r, 1) {
			return bad("Set: want value")
		}
		v, err := s.storeValue(r.args[0])
		if err != nil {
			return valueError(err)
		}
		old := o.val
		o.val = v
		s.releaseValue(old)
		c.ok(r.id, nil, nil)
	case opAdd:
		if !args(r, 1) && !args(r, 2) {
			return bad("Add: want delta, type")
		}
		sum, code, msg := add(o.val, r.args)
		if code != codeOK {
			return code, msg
		}
		o.val = sum
		c.ok(r.id, sum, nil)
	case opCAS:
		if !args(r, 2) {
			return bad("CompareAndSwap: want old, new")
		}
		if !bytes.Equal(o.val, canonical(r.args[0])) {
			c.ok(r.id, msgp.AppendBool(nil, false), nil)
			return codeOK, ""
		}
		v, err := s.storeValue(r.args[1])
		if err != nil {
			return valueError(err)
		}
		old := o.val
		o.val = v
		s.releaseValue(old)
		c.ok(r.id, msgp.AppendBool(nil, true), nil)
	default:
		return unknownOp(r, o)
	}
	return codeOK, ""
}

func (s *server) arrayOp(c *sconn, r *sreq, o *object) (int, string) {
	switch r.op {
	case opLen:
		c.ok(r.id, msgp.AppendUint(nil, uint64(len(o.items))), nil)
		return codeOK, ""
	case opSlice:
		s.sliceReply(c, r.id, o.items)
		return codeOK, ""
	case opGet, opSet, opAdd, opCAS:
	default:
		return unknownOp(r, o)
	}
	if len(r.args) < 1 {
		return bad("want index")
	}
	i, ok := index(r.args[0], len(o.items))
	if !ok {
		return codeIndex, fmt.Sprintf("index %s, length %d", numText(r.args[0]), len(o.items))
	}
	// The element ops are the Value ops on one slot.
	slot := &object{kind: kindValue, val: o.items[i]}
	sub := &sreq{id: r.id, op: r.op, obj: r.obj, args: r.args[1:]}
	code, msg := s.valueOp(c, sub, slot)
	o.items[i] = slot.val
	return code, msg
}

//go:build linux

package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"reflect"

	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/nats-io/nats.go/jetstream"
)

// dictBucketPrefix names the key-value bucket behind dict NAME: MPD_NAME.
const dictBucketPrefix = "MPD_"

// dictHistory is how many revisions of a key the bucket keeps: a watcher
// that falls this many changes of one key behind misses the older ones.
const dictHistory = 64

// Dict is a map kept by the NATS server in a key-value bucket, shared by
// every process, on every host, that opens it by name. It has the method
// set of manager.Dict; Add, CompareAndSwap, SetDefault and Pop are atomic
// however many processes call them at once (each is a write conditioned on
// the revision it read, retried when another write came first). Watch is
// new: it yields every change.
//
// Keys may be of any type msgpack encodes; a key is stored as the
// base64url form of its encoding, so equal keys must encode to equal bytes
// (true of numbers, strings, and structs of them; not of maps).
type Dict[K comparable, V any] struct {
	c    *Cluster
	name string
	kv   jetstream.KeyValue
}

// Change is one change of a Dict, as Watch yields it: Key now holds Value,
// or was deleted (Deleted, Value is the zero V).
type Change[K comparable, V any] struct {
	Key     K
	Value   V
	Deleted bool
}

// OpenDict opens the dict name, creating it if no process has: name is 1
// to 64 letters, digits, '-' or '_'. The dict lives in the server until
// DeleteDict.
func OpenDict[K comparable, V any](ctx context.Context, c *Cluster, name string) (*Dict[K, V], error) {
	if err := checkQueueName(name); err != nil {
		return nil, fmt.Errorf("cluster: dict name: %w", err)
	}
	kv, err := c.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: dictBucketPrefix + name,
		// Watch yields every change: a watcher whose consumer is re-made
		// (the client does so after a gap or a lost heartbeat) resumes at
		// the next revision it has not seen, and finds it only if the
		// bucket still holds it. 64 is the most the server keeps per key.
		History: dictHistory,
		Storage: jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = c.js.KeyValue(ctx, dictBucketPrefix+name)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open dict %s: %w", name, err)
	}
	return &Dict[K, V]{c: c, name: name, kv: kv}, nil
}

// DeleteDict deletes the dict name and everything in it. Deleting a dict
// that does not exist is not an error.
func DeleteDict(ctx context.Context, c *Cluster, name string) error {
	err := c.js.DeleteKeyValue(ctx, dictBucketPrefix+name)
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("cluster: delete dict %s: %w", name, err)
	}
	return nil
}

func (d *Dict[K, V]) errf(op string, err error) error {
	return fmt.Errorf("cluster: dict %s: %s: %w", d.name, op, err)
}

func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := wire.AppendTo(&b, nil, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// key encodes k to the key alphabet of the bucket (letters, digits, '-',
// '_', '=' and '.'): base64url of its msgpack encoding.
func (d *Dict[K, V]) key(k K) (string, error) {
	b, err := encode(k)
	if err != nil {
		return "", d.errf("key", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (d *Dict[K, V]) decodeKey(s string) (K, error) {
	var k K
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return k, d.errf("key", fmt.Errorf("stored key %q is not base64url: %w", s, err))
	}
	if err := wire.Unmarshal(b, nil, &k); err != nil {
		return k, d.errf("key", err)
	}
	return k, nil
}

func (d *Dict[K, V]) decode(b []byte) (V, error) {
	var v V
	if err := wire.Unmarshal(b, nil, &v); err != nil {
		return v, d.errf("value", err)
	}
	return v, nil
}

// entry returns k's entry, nil when k is missing.
func (d *Dict[K, V]) entry(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	return e, err
}

// isConflict reports whether a conditional write lost to another writer.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	a := apiError(err)
	return a != nil && (a.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		a.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Get returns the value under k and whether k is there.
func (d *Dict[K, V]) Get(ctx context.Context, k K) (V, bool, error) {
	var zero V
	key, err := d.key(k)
	if err != nil {
		return zero, false, err
	}
	e, err := d.entry(ctx, key)
	if err != nil || e == nil {
		if err != nil {
			err = d.errf("get", err)
		}
		return zero, false, err
	}
	v, err := d.decode(e.Value())
	return v, err == nil, err
}

// Set stores v under k.
func (d *Dict[K, V]) Set(ctx context.Context, k K, v V) error {
	key, err := d.key(k)
	if err != nil {
		return err
	}
	b, err := encode(v)
	if err != nil {
		return d.errf("set", err)
	}
	if _, err := d.kv.Put(ctx, key, b); err != nil {
		return d.errf("set", err)
	}
	return nil
}

// Delete removes k; a missing key is not an error (as Go's delete).
func (d *Dict[K, V]) Delete(ctx context.Context, k K) error {
	key, err := d.key(k)
	if err != nil {
		return err
	}
	if err := d.kv.Delete(ctx, key); err != nil {
		return d.errf("delete", err)
	}
	return nil
}

// keys returns the stored keys, encoded.
func (d *Dict[K, V]) keys(ctx context.Context) ([]string, error) {
	l, err := d.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// Len returns the number of keys. It reads every key: O(n).
func (d *Dict[K, V]) Len(ctx context.Context) (int, error) {
	ks, err := d.keys(ctx)
	if err != nil {
		return 0, d.errf("len", err)
	}
	return len(ks), nil
}

// Keys returns the keys, in no particular order. O(n).
func (d *Dict[K, V]) Keys(ctx context.Context) ([]K, error) {
	ks, err := d.keys(ctx)
	if err != nil {
		return nil, d.errf("keys", err)
	}
	out := make([]K, 0, len(ks))
	for _, s := range ks {
		k, err := d.decodeKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Items returns a copy of the whole dict. O(n).
func (d *Dict[K, V]) Items(ctx context.Context) (map[K]V, error) {
	w, err := d.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, d.errf("items", err)
	}
	defer w.Stop()
	out := map[K]V{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, d.errf("items", ctx.Err())
		}
		if e == nil { // the end of what was there
			return out, nil
		}
		k, err := d.decodeKey(e.Key())
		if err != nil {
			return nil, err
		}
		v, err := d.decode(e.Value())
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
}

// Update stores every pair of m (each pair is one write; the whole is not
// atomic).
func (d *Dict[K, V]) Update(ctx context.Context, m map[K]V) error {
	for k, v := range m {
		if err := d.Set(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

// Clear deletes every key (one delete per key: watchers see each).
func (d *Dict[K, V]) Clear(ctx context.Context) error {
	ks, err := d.keys(ctx)
	if err != nil {
		return d.errf("clear", err)
	}
	for _, k := range ks {
		if err := d.kv.Delete(ctx, k); err != nil {
			return d.errf("clear", err)
		}
	}
	return nil
}

// SetDefault stores v under k if k is missing, and returns the value now
// under k, atomically (Python's dict.setdefault).
func (d *Dict[K, V]) SetDefault(ctx context.Context, k K, v V) (V, error) {
	var zero V
	key, err := d.key(k)
	if err != nil {
		return zero, err
	}
	b, err := encode(v)
	if err != nil {
		return zero, d.errf("setdefault", err)
	}
	for {
		_, err := d.kv.Create(ctx, key, b)
		if err == nil {
			return v, nil
		}
		if !isConflict(err) {
			return zero, d.errf("setdefault", err)
		}
		e, err := d.entry(ctx, key)
		if err != nil {
			return zero, d.errf("setdefault", err)
		}
		if e != nil {
			return d.decode(e.Value())
		}
		// Deleted between the two calls: try again.
	}
}

// Pop removes k and returns its value and whether it was there,
// atomically: of two processes that pop one key, one gets the value.
func (d *Dict[K, V]) Pop(ctx context.Context, k K) (V, bool, error) {
	var zero V
	key, err := d.key(k)
	if err != nil {
		return zero, false, err
	}
	for {
		e, err := d.entry(ctx, key)
		if err != nil {
			return zero, false, d.errf("pop", err)
		}
		if e == nil {
			return zero, false, nil
		}
		err = d.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		if err == nil {
			v, err := d.decode(e.Value())
			return v, err == nil, err
		}
		if !isConflict(err) {
			return zero, false, d.errf("pop", err)
		}
	}
}

// update applies f to k's current value (nil bytes when missing) and
// writes the result conditioned on the revision read, retrying while
// another writer came first. f returns the new bytes, or nil to write
// nothing.
func (d *Dict[K, V]) update(ctx context.Context, op string, k K, f func(old []byte) ([]byte, error)) error {
	key, err := d.key(k)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return d.errf(op, err)
		}
		e, err := d.entry(ctx, key)
		if err != nil {
			return d.errf(op, err)
		}
		var old []byte
		if e != nil {
			old = e.Value()
		}
		nb, err := f(old)
		if err != nil || nb == nil {
			return err
		}
		if e == nil {
			_, err = d.kv.Create(ctx, key, nb)
		} else {
			_, err = d.kv.Update(ctx, key, nb, e.Revision())
		}
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return d.errf(op, err)
		}
	}
}

// CompareAndSwap stores new under k if the value there encodes to the same
// bytes as old (a missing key matches the zero V), atomically, and reports
// whether it did.
func (d *Dict[K, V]) CompareAndSwap(ctx context.Context, k K, old, new V) (bool, error) {
	ob, err := encode(old)
	if err != nil {
		return false, d.errf("compareandswap", err)
	}
	nb, err := encode(new)
	if err != nil {
		return false, d.errf("compareandswap", err)
	}
	var zero V
	zb, _ := encode(zero)
	swapped := false
	err = d.update(ctx, "compareandswap", k, func(cur []byte) ([]byte, error) {
		if cur == nil {
			cur = zb
		}
		swapped = bytes.Equal(cur, ob)
		if !swapped {
			return nil, nil
		}
		return nb, nil
	})
	return swapped && err == nil, err
}

// Add adds delta to the number under k, atomically, and returns the new
// value; a missing key starts from zero. Integers add exactly, within V's
// range (manager.ErrOverflow beyond it), floats in V's precision; a V that
// is not a number is manager.ErrNotNumber.
func (d *Dict[K, V]) Add(ctx context.Context, k K, delta V) (V, error) {
	var sum V
	if !isNumber(reflect.TypeFor[V]()) {
		return sum, d.errf("add", fmt.Errorf("%w: %T", manager.ErrNotNumber, sum))
	}
	err := d.update(ctx, "add", k, func(cur []byte) ([]byte, error) {
		var v V
		if cur != nil {
			var err error
			if v, err = d.decode(cur); err != nil {
				return nil, err
			}
		}
		s, err := addNumbers(v, delta)
		if err != nil {
			return nil, d.errf("add", err)
		}
		sum = s
		return encode(s)
	})
	return sum, err
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// addNumbers returns a+b for a numeric V, refusing an integer sum outside
// V's range.
func addNumbers[V any](a, b V) (V, error) {
	var out V
	va, vb, vo := reflect.ValueOf(a), reflect.ValueOf(b), reflect.ValueOf(&out).Elem()
	switch va.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, y := va.Int(), vb.Int()
		s := x + y
		if (y > 0 && s < x) || (y < 0 && s > x) || vo.OverflowInt(s) {
			return out, fmt.Errorf("%w: %d + %d overflows %T", manager.ErrOverflow, x, y, out)
		}
		vo.SetInt(s)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, y := va.Uint(), vb.Uint()
		s := x + y
		if s < x || vo.OverflowUint(s) {
			return out, fmt.Errorf("%w: %d + %d overflows %T", manager.ErrOverflow, x, y, out)
		}
		vo.SetUint(s)
	case reflect.Float32, reflect.Float64:
		s := va.Float() + vb.Float()
		if va.Kind() == reflect.Float32 {
			s = float64(float32(s))
		}
		vo.SetFloat(s)
	default:
		return out, fmt.Errorf("%w: %T", manager.ErrNotNumber, a)
	}
	return out, nil
}

// Close releases this handle; the dict stays on the server.
func (d *Dict[K, V]) Close() error { return nil }

// Watch yields every change made to the dict after Watch was called, by
// any process, in the order the server applied them, deletes included,
// until ctx ends or the caller stops iterating. An error (the connection
// lost, a value that does not decode) is yielded once and ends the
// sequence. The server keeps the last 64 revisions of each key: a watcher
// that falls more than 64 changes of one key behind (a consumer that does
// not range for a long while) misses the older ones.
func (d *Dict[K, V]) Watch(ctx context.Context) iter.Seq2[Change[K, V], error] {
	ctx, cancel := context.WithCancel(ctx)
	w, werr := d.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	// A sequence never ranged over must not keep its watcher: it ends with
	// ctx.
	if werr == nil {
		context.AfterFunc(ctx, func() { _ = w.Stop() })
	}
	return func(yield func(Change[K, V], error) bool) {
		defer cancel()
		if werr != nil {
			yield(Change[K, V]{}, d.errf("watch", werr))
			return
		}
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case e, ok = <-w.Updates():
			case <-ctx.Done():
				return
			}
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			var ch Change[K, V]
			k, err := d.decodeKey(e.Key())
			if err == nil {
				ch.Key = k
				if e.Operation() == jetstream.KeyValuePut {
					ch.Value, err = d.decode(e.Value())
				} else {
					ch.Deleted = true
				}
			}
			if err != nil {
				yield(Change[K, V]{}, err)
				return
			}
			if !yield(ch, nil) {
				return
			}
		}
	}
}

//go:build linux

package manager

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// fuzzServer is a server with no listener and a connection with no
// socket: runBatch only appends replies to c.out.
func fuzzServer() (*server, *sconn) {
	s := newServer("unix", "/nonexistent", 1<<20)
	c := &sconn{
		s:       s,
		holds:   make(map[uint64]int),
		tokens:  make(map[uint64]*token),
		waiting: make(map[uint64]*waiter),
		owned:   make(map[*object]struct{}),
		kick:    make(chan struct{}, 1),
	}
	s.conns[c] = struct{}{}
	return s, c
}

func encodeRequests(t testing.TB, reqs ...[]any) []byte {
	var out []byte
	for _, r := range reqs {
		b, err := msgpack.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// FuzzServerBatch feeds arbitrary request batches to the server's decoder
// and dispatcher: nothing may panic, hang or corrupt the object table, and
// a connection's clean-up must leave no object behind.
func FuzzServerBatch(f *testing.F) {
	ref := (&ref{server: serverID{1}, network: "unix", addr: "/x", id: 1, kind: kindList}).append(nil)
	proxyExt := append([]byte{0xc7, byte(len(ref)), 116}, ref...)
	seeds := [][]byte{
		encodeRequests(f, []any{1, int(opHello), 0, protocolVersion}),
		encodeRequests(f,
			[]any{1, int(opCreate), 0, int(kindDict), nil, nil},
			[]any{2, int(opSet), 1, "k", 1},
			[]any{3, int(opAdd), 1, "k", 2.5},
			[]any{4, int(opItems), 1},
			[]any{5, int(opCAS), 1, "k", map[string]int{"b": 1, "a": 2}, 3, false},
			[]any{6, int(opUpdate), 1, map[string]any{"x": []int{1, 2}, "y": nil}},
			[]any{7, int(opPop), 1, "x"}),
		encodeRequests(f,
			[]any{1, int(opCreate), 0, int(kindList), "named", nil},
			[]any{2, int(opExtend), 1, []any{1, "a", nil}},
			[]any{3, int(opInsert), 1, -5, "z"},
			[]any{4, int(opRemove), 1, "a"},
			[]any{5, int(opSlice), 1},
			[]any{6, int(opExport), 1},
			[]any{7, int(opRedeem), 1, 1, int(kindList)},
			[]any{8, int(opDecref), 1, 5}),
		encodeRequests(f,
			[]any{1, int(opCreate), 0, int(kindQueue), nil, 1},
			[]any{2, int(opPut), 1, "a"},
			[]any{3, int(opPut), 1, "b"},
			[]any{4, int(opGet), 1},
			[]any{0, int(opCancel), 3},
			[]any{5, int(opCreate), 0, int(kindCondition), nil, 0},
			[]any{6, int(opAcquire), 2},
			[]any{7, int(opWait), 3},
			[]any{8, int(opCreate), 0, int(kindBarrier), nil, 2},
			[]any{9, int(opWait), 4},
			[]any{0, int(opCancel), 9}),
		append(encodeRequests(f, []any{1, int(opCreate), 0, int(kindDict), nil, nil}),
			append([]byte{0x95, 2, byte(opSet), 1, 0xa1, 'k'}, proxyExt...)...),
		{0x93, 1, 0xc1, 0},
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x9f, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, c := fuzzServer()
		s.mu.Lock()
		s.runBatch(c, data)
		s.drain()
		s.mu.Unlock()
		// Every reply must parse as the client would parse it.
		out := c.out
		for len(out) > 0 {
			_, _, n, err := parseReply(out)
			if err != nil {
				t.Fatalf("unparsable reply %x: %v", out, err)
			}
			out = out[n:]
		}
		// Closing the connection releases everything it held: only named
		// objects may remain.
		c.conn = nil
		s.mu.Lock()
		s.forget(c)
		for _, o := range s.objects {
			if o.name == "" {
				t.Fatalf("object %d (%s, %d refs) outlived its only connection", o.id, o.kind, o.refs)
			}
		}
		s.mu.Unlock()
	})
}

// FuzzSkipValue: the value walker never panics and never claims more
// bytes than it has; canonical keeps a value's length class.
func FuzzSkipValue(f *testing.F) {
	for _, v := range []any{nil, 1, -1, "s", []any{1, []any{2}}, map[string]any{"b": 1, "a": map[int]int{2: 1, 1: 2}}, 1.5, []byte("x")} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := skipValue(b, func(p []byte) error { _, err := parseRef(p); return err })
		if err == nil && (n <= 0 || n > len(b)) {
			t.Fatalf("skipValue claimed %d of %d bytes", n, len(b))
		}
		if err == nil {
			c := canonical(b[:n])
			if m, err := skipValue(c, nil); err != nil || m != len(c) {
				t.Fatalf("canonical form of %x is not one value: %x", b[:n], c)
			}
		}
	})
}

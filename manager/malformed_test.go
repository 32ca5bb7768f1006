//go:build linux

package manager

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawReply reads one reply batch from a raw connection.
func rawReply(t *testing.T, c *pipe.Conn) []any {
	t.Helper()
	b, err := c.RecvBytes()
	require.NoError(t, err)
	var v []any
	require.NoError(t, msgpack.Unmarshal(b, &v))
	return v
}

// TestMalformedRequests speaks the protocol by hand: a request that parses
// as far as its id gets an ErrBadRequest reply and the connection lives
// on; bytes that are not even that close the connection; a frame over the
// limit closes it before the server allocates it. Through all of it the
// server keeps serving everyone else.
func TestMalformedRequests(t *testing.T) {
	ctx := testCtx(t)
	m, err := Start(ctx, WithMaxMessageSize(64<<10))
	require.NoError(t, err)
	defer m.Close()
	d, err := NewDict[string, int](ctx, m)
	require.NoError(t, err)
	require.NoError(t, d.Set(ctx, "k", 1))
	network, addr := m.Address()
	dial := func() *pipe.Conn {
		c, err := pipe.Dial(ctx, network, addr, process.AuthKey())
		require.NoError(t, err)
		return c
	}
	send := func(c *pipe.Conn, v ...any) {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, c.SendBytes(b))
	}

	c := dial()
	// Unknown op, bad kind, wrong argument types, no such object, a key
	// that is not msgpack at all inside a well-formed array: each gets an
	// error reply with its id.
	cases := []struct {
		req  []any
		code int
	}{
		{[]any{1, 250, 0}, codeNoObject},
		{[]any{2, int(opCreate), 0, "notakind", nil, nil}, codeBadRequest},
		{[]any{3, int(opCreate), 0, 200, nil, nil}, codeBadRequest},
		{[]any{4, int(opGet), 999999}, codeNoObject},
		{[]any{5, int(opCreate), 0, int(kindQueue), nil, -1}, codeInvalid},
		{[]any{6, int(opCreate), 0, int(kindObject), nil, "unregistered"}, codeNoType},
	}
	for _, tc := range cases {
		send(c, tc.req...)
		r := rawReply(t, c)
		require.Len(t, r, 4, "%v", tc.req)
		assert.EqualValues(t, tc.req[0], r[0])
		assert.EqualValues(t, tc.code, r[1], "%v: %v", tc.req, r[2])
	}
	// A dict op with arguments of the wrong shape.
	send(c, 7, int(opCreate), 0, int(kindDict), nil, nil)
	r := rawReply(t, c)
	require.EqualValues(t, codeOK, r[1])
	id := r[2]
	send(c, 8, int(opSet), id, "only a key")
	r = rawReply(t, c)
	assert.EqualValues(t, codeBadRequest, r[1])
	send(c, 9, int(opAdd), id, "k", "not a number")
	r = rawReply(t, c)
	assert.EqualValues(t, codeNotNumber, r[1])
	// A value that claims more bytes than it has, after a valid id: the
	// array parses up to the id, so the reply names it.
	require.NoError(t, c.SendBytes([]byte{0x94, 10, byte(opSet), 1, 0xdb, 0xff, 0xff, 0xff, 0xff}))
	r = rawReply(t, c)
	assert.EqualValues(t, 10, r[0])
	assert.EqualValues(t, codeBadRequest, r[1])
	// Still usable.
	send(c, 11, int(opLen), id)
	r = rawReply(t, c)
	assert.EqualValues(t, codeOK, r[1])

	// Garbage without an id: the connection is closed.
	require.NoError(t, c.SendBytes([]byte{0xc1, 0xc1, 0xc1}))
	_, err = c.RecvBytes()
	assert.ErrorIs(t, err, io.EOF)
	c.Close()

	// A frame over the limit: closed without reading it (so the send may
	// fail with a broken pipe; TestOversizeFrameCloses checks that
	// nothing of it is read).
	c = dial()
	c.SendBytes(make([]byte, 100<<10))
	_, err = c.RecvBytes()
	assert.Error(t, err)
	c.Close()

	// A frame cut short by the peer's exit.
	if network == "unix" {
		nc, err := net.Dial(network, addr)
		require.NoError(t, err)
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], 1000)
		nc.Write(h[:])
		nc.Write([]byte("partial"))
		nc.Close()
	}

	// A peer that never completes the handshake does not block others.
	nc, err := net.Dial(network, addr)
	require.NoError(t, err)
	defer nc.Close()

	v, _, err := d.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	m2, err := Connect(ctx, network, addr, nil)
	require.NoError(t, err)
	require.NoError(t, m2.Close())
}

// TestDeepValues: a value whose arrays and maps nest msgp.MaxDepth deep
// is stored and returned as sent; one level more is refused with an error
// reply, because every decoder of it (a client's msgpack, the pool's
// codec) recurses once per level and a peer must not choose how deep.
func TestDeepValues(t *testing.T) {
	nested := func(depth int) []byte {
		return append(bytes.Repeat([]byte{0x91}, depth), 0x01)
	}
	s, c := fuzzServer()
	batch := encodeRequests(t, []any{1, int(opCreate), 0, int(kindDict), nil, nil})
	batch = append(append(batch, 0x95, 2, byte(opSet), 1, 0xa1, 'k'), nested(msgp.MaxDepth)...)
	batch = append(append(batch, 0x95, 3, byte(opSet), 1, 0xa1, 'k'), nested(msgp.MaxDepth+1)...)
	s.mu.Lock()
	s.runBatch(c, batch) // the rest of a batch after a bad request is dropped
	s.runBatch(c, encodeRequests(t, []any{4, int(opGet), 1, "k"}))
	s.drain()
	s.mu.Unlock()
	replies := map[uint64]reply{}
	for out := c.out; len(out) > 0; {
		id, rep, n, err := parseReply(out)
		require.NoError(t, err)
		replies[id] = rep
		out = out[n:]
	}
	require.Len(t, replies, 4)
	assert.Equal(t, codeOK, replies[2].code)
	assert.Equal(t, codeBadRequest, replies[3].code)
	assert.Equal(t, codeOK, replies[4].code)
	assert.Equal(t, nested(msgp.MaxDepth), replies[4].payload)
	s.mu.Lock()
	s.forget(c)
	s.mu.Unlock()
}

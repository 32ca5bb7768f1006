//go:build linux

package queue

import (
	"encoding/binary"
	"testing"

	"github.com/mpgo/multiprocessing/internal/qframe"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeState feeds arbitrary handle states (what arrives from another
// process inside an argument): decoding fails cleanly, never panics, and
// leaks no descriptor it was not given.
func FuzzDecodeState(f *testing.F) {
	good := []byte{stateVersion, byte(kindQueue)}
	good = binary.BigEndian.AppendUint64(good, 3)
	good = binary.BigEndian.AppendUint32(good, 1000)
	for i := range 4 {
		good = binary.BigEndian.AppendUint16(good, uint16(i))
	}
	good = append(good, 0, 0, 0, 4, 0, 0, 0x10, 0)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{stateVersion, byte(kindSimple)})
	f.Fuzz(func(t *testing.T, state []byte) {
		for _, k := range []kind{kindQueue, kindJoinable, kindSimple} {
			c, err := decodeCore(k, state, wire.Received(nil))
			require.Error(t, err, "no descriptors travelled, nothing can decode")
			require.Nil(t, c)
		}
	})
}

// Garbage in the pipe (bytes no queue wrote) is an error at Get, and the
// queue stays usable.
func TestGarbagePackets(t *testing.T) {
	q, err := New[int](0)
	require.NoError(t, err)
	defer q.Close()
	ctx := testbin.Context(t)
	for _, p := range [][]byte{
		{0xff, 1, 2},            // unknown kind
		{qframe.KindMarker, 1},  // short marker
		{qframe.KindItem, 0xc1}, // msgpack "never used" code
		qframe.AppendMarker(nil, qframe.Marker{Writer: 1, Seq: 1, Size: 5000, Count: 2}), // a marker with no item
	} {
		require.NoError(t, writePacket(q.c.mw, p))
	}
	require.NoError(t, q.Put(ctx, 42))
	errs := 0
	for {
		v, err := q.Get(ctx)
		if err == nil {
			assert.Equal(t, 42, v)
			break
		}
		errs++
		t.Log(err)
	}
	assert.Equal(t, 3, errs, "three bad packets; the marker without an item is void")
	_, err = q.TryGet()
	assert.ErrorIs(t, err, ErrEmpty)
}

package pipe_test

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"

	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A peer that has not authenticated cannot make Accept allocate the 1 GiB a
// frame header may announce: the handshake reads at most 256 bytes a
// message, as Python's does.
func TestHandshakeFrameLimit(t *testing.T) {
	l := listen(t, "unix", []byte("key"))
	raw, err := net.Dial("unix", l.Addr().String())
	require.NoError(t, err)
	defer raw.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	go func() {
		// Skip the challenge, then announce a message just under 1 GiB.
		var h [4]byte
		raw.Read(h[:])
		raw.Read(make([]byte, binary.BigEndian.Uint32(h[:])))
		binary.BigEndian.PutUint32(h[:], 1<<30-1)
		raw.Write(h[:])
		raw.(*net.UnixConn).CloseWrite()
	}()
	_, err = l.Accept(ctxT(t))
	assert.ErrorIs(t, err, pipe.ErrAuth)
	assert.ErrorIs(t, err, pipe.ErrTooLarge)
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.TotalAlloc-before, uint64(64<<20), "allocated for an unauthenticated peer")
}

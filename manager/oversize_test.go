//go:build linux

package manager

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
)

// rawHandshake runs the client side of the authkey handshake by hand on
// nc, leaving the test free to write any bytes afterwards.
func rawHandshake(t *testing.T, nc net.Conn, key []byte) {
	t.Helper()
	recv := func() []byte {
		var h [4]byte
		_, err := io.ReadFull(nc, h[:])
		require.NoError(t, err)
		b := make([]byte, binary.BigEndian.Uint32(h[:]))
		_, err = io.ReadFull(nc, b)
		require.NoError(t, err)
		return b
	}
	send := func(b []byte) {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(len(b)))
		_, err := nc.Write(append(h[:], b...))
		require.NoError(t, err)
	}
	challenge := bytes.TrimPrefix(recv(), []byte("#CHALLENGE#"))
	m := hmac.New(sha256.New, key)
	m.Write(challenge)
	send(append([]byte("{sha256}"), m.Sum(nil)...))
	require.Equal(t, "#WELCOME#", string(recv()))
	send(append([]byte("#CHALLENGE#{sha256}"), make([]byte, 40)...))
	recv() // the server's answer, which we do not check
	send([]byte("#WELCOME#"))
}

// A frame announced over the server's limit closes the connection at
// once: the server does not read (and discard) the 4 GiB it announces.
func TestOversizeFrameCloses(t *testing.T) {
	ctx := testCtx(t)
	m, err := Start(ctx, WithMaxMessageSize(64<<10))
	require.NoError(t, err)
	defer m.Close()
	network, addr := m.Address()
	nc, err := net.Dial(network, addr)
	require.NoError(t, err)
	defer nc.Close()
	rawHandshake(t, nc, process.AuthKey())
	var h [12]byte
	binary.BigEndian.PutUint32(h[:], 0xFFFFFFFF)
	binary.BigEndian.PutUint64(h[4:], 4<<30)
	_, err = nc.Write(append(h[:], "the first bytes of 4 GiB"...))
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(time.Second + testbin.Slack))
	_, err = nc.Read(make([]byte, 1))
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the connection stayed open: the server is reading what was announced")
}

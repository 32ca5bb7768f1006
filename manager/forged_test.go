//go:build linux

package manager

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// A forged proxy stored in a manager (by anyone with its key), pointing at
// an attacker's listener: the victim that reads and uses it gets a clear
// error naming the address, and never dials it (so it never presents its
// key for the attacker to relay to a real manager).
func TestForgedProxyDialsNothing(t *testing.T) {
	ctx := testCtx(t)
	attacker, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var dialled atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := attacker.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	defer func() { attacker.Close(); <-done }()

	b, err := Start(ctx)
	require.NoError(t, err)
	defer b.Close()
	raw, err := NewDict[string, msgpack.RawMessage](ctx, b, Named("mailbox"))
	require.NoError(t, err)
	defer raw.Close()
	victim, err := NewDict[string, *Dict[string, int]](ctx, b, Named("mailbox"))
	require.NoError(t, err)
	defer victim.Close()
	// Without a family mark, and with one made without process.AuthKey().
	for _, mark := range [][]byte{nil, bytes.Repeat([]byte{1}, 32)} {
		forged := ref{server: newServerID(), network: "tcp", addr: attacker.Addr().String(), id: 1, kind: kindDict, token: 7, mark: mark}
		payload := forged.append(nil)
		ext := append([]byte{0xc7, byte(len(payload)), byte(wire.ExtProxy)}, payload...)
		require.NoError(t, raw.Set(ctx, "evil", ext))
		p, ok, err := victim.Get(ctx, "evil")
		require.NoError(t, err)
		require.True(t, ok)
		_, _, err = p.Get(ctx, "x")
		require.ErrorIs(t, err, ErrUnknownManager)
		assert.Contains(t, err.Error(), attacker.Addr().String())
		assert.Contains(t, err.Error(), "manager.Allow(")
		p.Close()
	}
	time.Sleep(50 * time.Millisecond) // a dial, had there been one, has landed
	assert.Zero(t, dialled.Load(), "the victim dialled the forged address")
}

//go:build linux

package pipe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type delivery struct {
	Conn *pipe.Conn
	File *os.File
	Net  net.Conn
	Note string
}

// courier is an already running child that receives handles over its
// connection and uses them: the pre-forked worker pattern.
var courier = process.Register("pipe_test.courier", func(ctx context.Context, c *pipe.Conn) error {
	defer c.Close()
	for {
		var d delivery
		err := c.Recv(&d)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := d.File.WriteString(d.Note); err != nil {
			return err
		}
		d.File.Close()
		if _, err := d.Net.Write([]byte(d.Note)); err != nil {
			return err
		}
		d.Net.Close()
		if err := d.Conn.Send("via " + d.Note); err != nil {
			return err
		}
		d.Conn.Close()
		if err := c.Send("done"); err != nil {
			return err
		}
	}
})

func TestHandlesOverConn(t *testing.T) {
	ctl, child, err := pipe.Pipe()
	require.NoError(t, err)
	defer ctl.Close()
	p := process.New(courier, child)
	require.NoError(t, p.Start())
	child.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	before := testbin.FDCount(t)
	for i := range 3 {
		note := string(rune('a' + i))
		mine, theirs, err := pipe.Pipe()
		require.NoError(t, err)
		r, w, err := os.Pipe()
		require.NoError(t, err)
		nc, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		srv, err := ln.Accept()
		require.NoError(t, err)

		require.NoError(t, ctl.Send(delivery{Conn: theirs, File: w, Net: nc, Note: note}))
		// Our copies can go at once: the child has its own.
		theirs.Close()
		w.Close()
		nc.Close()

		var ack string
		require.NoError(t, ctl.Recv(&ack))
		require.Equal(t, "done", ack)
		var got string
		require.NoError(t, mine.Recv(&got))
		assert.Equal(t, "via "+note, got)
		b, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, note, string(b))
		b, err = io.ReadAll(srv)
		require.NoError(t, err)
		assert.Equal(t, note, string(b))
		mine.Close()
		r.Close()
		srv.Close()
	}
	assert.Equal(t, before, testbin.FDCount(t), "no descriptor leaked on either side of the exchange")
	require.NoError(t, ctl.Close())
	require.NoError(t, p.Join(testbin.Context(t)))
}

// A message with handles read as bytes closes its descriptors, and the
// messages after it are unaffected.
func TestHandlesReadAsBytes(t *testing.T) {
	a, b := pair(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	before := testbin.FDCount(t)
	require.NoError(t, a.Send(delivery{File: w, Note: "x"}))
	w.Close()
	require.NoError(t, a.Send("plain"))
	_, err = b.RecvBytes()
	require.NoError(t, err)
	var s string
	require.NoError(t, b.Recv(&s))
	assert.Equal(t, "plain", s)
	assert.Equal(t, before-1, testbin.FDCount(t), "the received duplicate was closed")
	// Every writer is gone: the pipe reports EOF.
	n, err := r.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, io.EOF)
}

func TestHandlesNeedUnixSocket(t *testing.T) {
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	err = w.Send(delivery{File: f})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unix socket")
}

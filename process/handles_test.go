//go:build linux

package process_test

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type handleArg struct {
	Conn  *pipe.Conn
	Any   any
	Files []*os.File
	NC    net.Conn
}

var useHandles = process.Register("test.handles", func(ctx context.Context, a handleArg) error {
	var s string
	if err := a.Conn.Recv(&s); err != nil {
		return err
	}
	if err := a.Conn.Send("echo:" + s); err != nil {
		return err
	}
	if err := a.Any.(*pipe.Conn).SendBytes([]byte("via any")); err != nil {
		return err
	}
	for _, f := range a.Files {
		if _, err := f.WriteString("file\n"); err != nil {
			return err
		}
	}
	_, err := a.NC.Write([]byte("net"))
	return err
})

func TestHandlesArrive(t *testing.T) {
	a, b, err := pipe.Pipe()
	require.NoError(t, err)
	defer a.Close()
	x, y, err := pipe.Pipe()
	require.NoError(t, err)
	defer x.Close()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv, err := ln.Accept()
	require.NoError(t, err)
	defer srv.Close()

	p := process.New(useHandles, handleArg{Conn: b, Any: y, Files: []*os.File{w}, NC: nc})
	require.NoError(t, p.Start())
	b.Close()
	y.Close()
	w.Close()
	nc.Close()
	require.NoError(t, a.Send("hi"))
	var got string
	require.NoError(t, a.Recv(&got))
	assert.Equal(t, "echo:hi", got)
	msg, err := x.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "via any", string(msg))
	buf := make([]byte, 5)
	_, err = r.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "file\n", string(buf))
	nb := make([]byte, 3)
	_, err = srv.Read(nb)
	require.NoError(t, err)
	assert.Equal(t, "net", string(nb))
	require.NoError(t, p.Join(testbin.Context(t)))
}

//go:build linux

package pipe_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func listen(t *testing.T, network string, key []byte) *pipe.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "sock")
	}
	l, err := pipe.Listen(network, addr, key)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestListenDial(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		for _, key := range [][]byte{nil, {}, []byte("secret")} {
			t.Run(fmt.Sprintf("%s/%q", network, key), func(t *testing.T) {
				l := listen(t, network, key)
				errc := make(chan error, 1)
				go func() {
					c, err := l.Accept(testbin.Context(t))
					if err != nil {
						errc <- err
						return
					}
					defer c.Close()
					var s string
					if err := c.Recv(&s); err != nil {
						errc <- err
						return
					}
					errc <- c.Send(strings.ToUpper(s))
				}()
				c, err := pipe.Dial(testbin.Context(t), network, l.Addr().String(), key)
				require.NoError(t, err)
				defer c.Close()
				require.NoError(t, c.Send("hello"))
				var got string
				require.NoError(t, c.Recv(&got))
				assert.Equal(t, "HELLO", got)
				require.NoError(t, <-errc)
			})
		}
	}
}

func TestWrongAuthkey(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			l := listen(t, network, []byte("right"))
			errc := make(chan error, 1)
			go func() {
				_, err := l.Accept(testbin.Context(t))
				errc <- err
			}()
			_, err := pipe.Dial(testbin.Context(t), network, l.Addr().String(), []byte("wrong"))
			assert.ErrorIs(t, err, pipe.ErrAuth)
			assert.ErrorIs(t, <-errc, pipe.ErrAuth)

			// The listener stays usable.
			go func() {
				c, err := l.Accept(testbin.Context(t))
				if err == nil {
					c.Close()
				}
				errc <- err
			}()
			c, err := pipe.Dial(testbin.Context(t), network, l.Addr().String(), []byte("right"))
			require.NoError(t, err)
			c.Close()
			require.NoError(t, <-errc)
		})
	}
}

// A client that connects and says nothing delays nobody: Accept returns the
// next legitimate connection at once, and the silent one is dropped after
// HandshakeTimeout at most.
func TestAcceptSilentClient(t *testing.T) {
	l := listen(t, "unix", []byte("k"))
	nc, err := net.Dial("unix", l.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := pipe.Dial(testbin.Context(t), "unix", l.Addr().String(), []byte("k"))
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := l.Accept(ctx)
	require.NoError(t, err, "a silent peer held up a legitimate one")
	c.Close()
	require.NoError(t, <-errc)
}

// Hundreds of idle connections held open (on 127.0.0.1, no key needed to
// make them) do not lock legitimate clients out: each handshake runs on its
// own, at most MaxPendingHandshakes are held (the oldest dropped first), and
// a legitimate Dial and Accept complete well within a second.
func TestIdleConnectionsDoNotLockOut(t *testing.T) {
	const idle = 500
	testbin.NeedFDs(t, 2*idle)
	l := listen(t, "tcp", []byte("k"))
	ctx := testbin.Context(t)
	accepted := make(chan *pipe.Conn, 16)
	go func() {
		for {
			c, err := l.Accept(ctx)
			if errors.Is(err, pipe.ErrClosed) || ctx.Err() != nil {
				close(accepted)
				return
			}
			if err == nil {
				accepted <- c
			}
		}
	}()
	var held []net.Conn
	defer func() {
		for _, nc := range held {
			nc.Close()
		}
	}()
	for range idle {
		nc, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		held = append(held, nc)
	}
	for i := range 5 {
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, time.Second+testbin.Slack)
		c, err := pipe.Dial(dctx, "tcp", l.Addr().String(), []byte("k"))
		cancel()
		require.NoError(t, err, "legitimate dial %d with %d idle connections held", i, idle)
		select {
		case s := <-accepted:
			s.Close()
		case <-time.After(time.Second + testbin.Slack):
			t.Fatal("Accept did not return the legitimate connection")
		}
		c.Close()
		t.Logf("dial %d: %v", i, time.Since(start))
	}
	l.Close()
	for c := range accepted {
		c.Close()
	}
}

func TestAcceptCancelAndClose(t *testing.T) {
	l := listen(t, "tcp", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := l.Accept(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// Still usable after a cancelled Accept.
	go func() {
		c, err := pipe.Dial(testbin.Context(t), "tcp", l.Addr().String(), nil)
		if err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept(testbin.Context(t))
	require.NoError(t, err)
	c.Close()
	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	_, err = l.Accept(testbin.Context(t))
	assert.ErrorIs(t, err, pipe.ErrClosed)
}

func TestUnixSocketRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := pipe.Listen("unix", path, nil)
	require.NoError(t, err)
	_, err = os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = os.Stat(path)
	assert.True(t, errors.Is(err, os.ErrNotExist), "socket file left behind")
}

func TestDoubleBind(t *testing.T) {
	l := listen(t, "tcp", nil)
	_, err := pipe.Listen("tcp", l.Addr().String(), nil)
	assert.Error(t, err)
}

// Python interop: a real python3 speaks multiprocessing.connection to us.
func python(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	return py
}

// goSide runs the Go end of testdata/interop.py's exchange.
func goSide(t *testing.T, c *pipe.Conn) {
	t.Helper()
	big := bytes.Repeat([]byte("abc"), 100<<10/3)
	for _, msg := range [][]byte{[]byte("hello from go"), {}, big} {
		require.NoError(t, c.SendBytes(msg))
		got, err := c.RecvBytes()
		require.NoError(t, err)
		assert.Equal(t, bytes.ToUpper(msg), got)
	}
	got, err := c.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte(func() string {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return string(b)
	}()), 4096), got)
	_, err = c.RecvBytes()
	assert.ErrorIs(t, err, io.EOF)
}

func TestPythonClient(t *testing.T) {
	py := python(t)
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			l := listen(t, network, []byte("py-secret"))
			cmd := exec.CommandContext(testbin.Context(t), py, "testdata/interop.py", "client", l.Addr().String(), "py-secret")
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			c, err := l.Accept(testbin.Context(t))
			require.NoError(t, err, "python said: %s", &out)
			goSide(t, c)
			c.Close()
			require.NoError(t, cmd.Wait(), out.String())
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		l := listen(t, "unix", []byte("py-secret"))
		cmd := exec.CommandContext(testbin.Context(t), py, "testdata/interop.py", "client", l.Addr().String(), "nope")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		_, err := l.Accept(testbin.Context(t))
		assert.ErrorIs(t, err, pipe.ErrAuth)
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 4, ee.ExitCode(), out.String())
		assert.Contains(t, out.String(), "AUTHFAIL")
	})
}

func TestPythonListener(t *testing.T) {
	py := python(t)
	start := func(t *testing.T, addr, key string) (*exec.Cmd, *syncBuffer) {
		cmd := exec.CommandContext(testbin.Context(t), py, "testdata/interop.py", "server", addr, key)
		out := &syncBuffer{}
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = out
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err, "python said: %s", out)
		require.Equal(t, "ready\n", line)
		return cmd, out
	}
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := filepath.Join(t.TempDir(), "py.sock")
			if network == "tcp" {
				addr = freeTCPAddr(t)
			}
			cmd, out := start(t, addr, "k2")
			c, err := pipe.Dial(testbin.Context(t), network, addr, []byte("k2"))
			require.NoError(t, err, "python said: %s", out)
			goSide(t, c)
			c.Close()
			require.NoError(t, cmd.Wait(), out.String())
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		addr := filepath.Join(t.TempDir(), "py.sock")
		cmd, _ := start(t, addr, "k2")
		_, err := pipe.Dial(testbin.Context(t), "unix", addr, []byte("bad"))
		assert.ErrorIs(t, err, pipe.ErrAuth)
		var ee *exec.ExitError
		require.ErrorAs(t, cmd.Wait(), &ee)
		assert.Equal(t, 4, ee.ExitCode())
	})
}

func freeTCPAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

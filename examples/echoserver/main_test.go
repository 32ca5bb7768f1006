package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func startServer(t *testing.T, ctx context.Context, bin string, args ...string) (*exec.Cmd, *bufio.Scanner, string) {
	t.Helper()
	srv := exec.CommandContext(ctx, bin, args...)
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan())
	addr, ok := strings.CutPrefix(sc.Text(), "listening on ")
	require.True(t, ok, sc.Text())
	return srv, sc, addr
}

func TestEchoServer(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, sc, addr := startServer(t, ctx, bin, "-n", "3")

	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			out, err := exec.CommandContext(ctx, bin, "-client", addr, fmt.Sprint("hello ", i), "bye").CombinedOutput()
			assert.NoError(t, err, string(out))
			assert.Equal(t, fmt.Sprintf("HELLO %d\nBYE\n", i), string(out))
		})
	}
	wg.Wait()
	pids := map[string]bool{}
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == "connection" {
			pids[f[len(f)-1]] = true
		}
	}
	require.NoError(t, srv.Wait())
	assert.Len(t, pids, 3, "one process per connection")
}

// SIGINT stops the server and ends open sessions: nothing is left behind.
func TestEchoServerInterrupt(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, sc, addr := startServer(t, ctx, bin)
	// An open session, idle when the server is interrupted.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("one\n"))
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ONE\n", line)
	require.True(t, sc.Scan()) // the "connection from" line
	require.NoError(t, srv.Process.Signal(syscall.SIGINT))
	for sc.Scan() {
	}
	require.NoError(t, srv.Wait(), "the server exits once its sessions end")
	_, err = r.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF, "the session process closed the connection")
}

// Run bare, the server says where it listens and how to connect, and -h
// describes both modes.
func TestEchoServerUsage(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "echoserver -client host:port")

	srv := exec.CommandContext(ctx, bin)
	stderr, err := srv.StderrPipe()
	require.NoError(t, err)
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan())
	addr, ok := strings.CutPrefix(sc.Text(), "listening on ")
	require.True(t, ok, sc.Text())
	esc := bufio.NewScanner(stderr)
	require.True(t, esc.Scan())
	assert.Contains(t, esc.Text(), "echoserver -client "+addr+" hello world")
	assert.Contains(t, esc.Text(), "Ctrl-C")
	require.NoError(t, srv.Process.Signal(syscall.SIGINT))
	for sc.Scan() {
	}
	for esc.Scan() {
	}
	require.NoError(t, srv.Wait())
}

//go:build linux

package pipe

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// lateCancel replaces context.AfterFunc for one test with the worst timing
// a cancellation can have: it happens just as the operation that registered
// the function calls stop, so stop reports that the function has started,
// and the function runs a moment later. The returned func waits for every
// such function to have run.
func lateCancel(t *testing.T) (wait func()) {
	var mu sync.Mutex
	var started []chan struct{}
	afterFunc = func(ctx context.Context, f func()) func() bool {
		var once sync.Once
		return func() bool {
			once.Do(func() {
				done := make(chan struct{})
				mu.Lock()
				started = append(started, done)
				mu.Unlock()
				go func() {
					defer close(done)
					time.Sleep(20 * time.Millisecond)
					f()
				}()
			})
			return false
		}
	}
	wait = func() {
		mu.Lock()
		chans := started
		mu.Unlock()
		for _, c := range chans {
			<-c
		}
	}
	t.Cleanup(func() {
		afterFunc = context.AfterFunc
		wait()
	})
	return wait
}

// Wait's wake-up write must not land in a descriptor that took the number
// of its eventfd after Wait returned.
func TestWaitLateCancel(t *testing.T) {
	wait := lateCancel(t)
	a, b, err := Pipe()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	require.NoError(t, a.SendBytes([]byte("x"))) // b is ready: Wait returns at once
	ready, err := Wait(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, []*Conn{b}, ready)
	// Take the lowest free descriptor numbers, the eventfd's among them.
	var socks [][2]int
	for range 8 {
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		require.NoError(t, err)
		socks = append(socks, [2]int{sp[0], sp[1]})
	}
	wait()
	for _, sp := range socks {
		n, _ := unix.Read(sp[1], make([]byte, 16))
		assert.LessOrEqual(t, n, 0, "Wait wrote into descriptor %d after returning", sp[0])
		unix.Close(sp[0])
		unix.Close(sp[1])
	}
}

// An Accept whose ctx ends just as a connection arrives must not leave the
// listener with an expired deadline: later Accepts would spin without
// accepting anything.
func TestAcceptLateCancel(t *testing.T) {
	wait := lateCancel(t)
	l, err := Listen("tcp", "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer l.Close()
	c1, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c1.Close()
	s1, err := l.Accept(context.Background())
	require.NoError(t, err)
	s1.Close()
	wait()
	afterFunc = context.AfterFunc

	c2, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s2, err := l.Accept(ctx)
	require.NoError(t, err, "the listener was left unusable")
	s2.Close()
}

// A handshake whose ctx ends just as it completes must not return a Conn
// whose reads and writes then time out at once.
func TestHandshakeLateCancel(t *testing.T) {
	wait := lateCancel(t)
	l, err := Listen("unix", filepath.Join(t.TempDir(), "s"), []byte("key"))
	require.NoError(t, err)
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept(context.Background())
		if err == nil {
			defer c.Close()
			var s string
			if err = c.Recv(&s); err == nil {
				err = c.Send(s + "!")
			}
		}
		errc <- err
	}()
	c, err := Dial(context.Background(), "unix", l.Addr().String(), []byte("key"))
	require.NoError(t, err)
	defer c.Close()
	wait()
	require.NoError(t, c.Send("hi"))
	var got string
	require.NoError(t, c.Recv(&got), "the Conn was returned with an expired deadline")
	assert.Equal(t, "hi!", got)
	require.NoError(t, <-errc)
}

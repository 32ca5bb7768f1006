//go:build linux

package pipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Many Accepts at once, some of them cancelled while they wait: every
// connection is accepted exactly once, the cancelled Accepts report their
// ctx, and Close ends the rest with ErrClosed. With a key, the handshakes
// run in parallel. (A ctx that ends during a handshake fails that
// connection, as documented, so the keyed run cancels nothing.)
func TestConcurrentAccept(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("k")} {
		t.Run(fmt.Sprintf("key=%q", key), func(t *testing.T) {
			l := listen(t, "unix", key)
			const dials = 40
			var accepted, cancelled atomic.Int32
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					for {
						ctx, cancel := context.WithCancel(context.Background())
						if key == nil && i%2 == 0 {
							ctx, cancel = context.WithTimeout(ctx, time.Duration(1+i)*time.Millisecond)
						}
						c, err := l.Accept(ctx)
						cancel()
						switch {
						case err == nil:
							accepted.Add(1)
							c.SendBytes([]byte("hi"))
							c.Close()
						case errors.Is(err, pipe.ErrClosed):
							return
						case errors.Is(err, context.DeadlineExceeded):
							cancelled.Add(1)
						default:
							t.Errorf("Accept: %v", err)
							return
						}
					}
				})
			}
			var dwg sync.WaitGroup
			for range dials {
				dwg.Go(func() {
					c, err := pipe.Dial(testbin.Context(t), "unix", l.Addr().String(), key)
					if !assert.NoError(t, err) {
						return
					}
					defer c.Close()
					got, err := c.RecvBytes()
					assert.NoError(t, err)
					assert.Equal(t, "hi", string(got))
				})
			}
			dwg.Wait()
			if key == nil {
				// The timed Accepts keep waiting once the dials are done:
				// one of them ends by its ctx before we close.
				deadline := time.Now().Add(10 * time.Second)
				for cancelled.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			require.NoError(t, l.Close())
			wg.Wait()
			assert.Equal(t, int32(dials), accepted.Load())
			if key == nil {
				assert.Positive(t, cancelled.Load(), "no Accept was cancelled: the test proves less")
			}
		})
	}
}

// Send, Recv, Poll, Wait and Close from many goroutines at once (run with
// -race): messages stay whole, and after Close everything returns
// ErrClosed or EOF, nothing hangs.
func TestConnConcurrentUse(t *testing.T) {
	a, b := pair(t)
	const senders, each = 4, 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				msg := bytes.Repeat([]byte{byte(s)}, 1+(i*131)%70000)
				var err error
				if i%2 == 0 {
					err = a.SendBytes(msg)
				} else {
					err = a.Send(msg)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var got atomic.Int32
	var rwg sync.WaitGroup
	for r := range 3 {
		rwg.Go(func() {
			for {
				var msg []byte
				var err error
				if r == 0 {
					msg, err = b.RecvBytes()
				} else {
					ok, perr := b.Poll(time.Millisecond)
					if perr != nil {
						err = perr
					} else if !ok {
						continue
					} else if _, werr := pipe.Wait(testbin.Context(t), b); werr != nil {
						err = werr
					} else {
						msg, err = b.RecvBytes()
					}
				}
				if err != nil {
					if !errors.Is(err, pipe.ErrClosed) && !errors.Is(err, io.EOF) {
						t.Errorf("reader %d: %v", r, err)
					}
					return
				}
				// A Send's raw bytes are a msgpack bin header and the
				// payload: every payload byte is the sender's number.
				if n := len(msg); n > 1 && !bytes.Equal(msg[n/2:], bytes.Repeat(msg[n-1:], n-n/2)) {
					t.Errorf("reader %d: messages interleaved", r)
				}
				got.Add(1)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for got.Load() < senders*each && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a counter, not synchronising
	}
	require.NoError(t, b.Close())
	rwg.Wait()
	assert.Equal(t, int32(senders*each), got.Load())
}

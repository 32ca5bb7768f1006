//go:build linux

package pipe_test

import (
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closeSoon closes c from another goroutine after 100 ms.
func closeSoon(t *testing.T, c *pipe.Conn) {
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		time.Sleep(100 * time.Millisecond)
		c.Close()
	}()
}

// A Wait in progress returns as soon as another goroutine closes one of
// its Conns, with that Conn ready (its Recv then returns ErrClosed), as a
// Conn closed before the Wait is.
func TestWaitWokenByClose(t *testing.T) {
	_, b := pair(t)
	_, other := pair(t)
	closeSoon(t, b)
	start := time.Now()
	ready, err := pipe.Wait(testbin.ContextFor(t, 5*time.Second), other, b)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 100*time.Millisecond+testbin.Slack, "Wait slept past the Close")
	assert.Equal(t, []*pipe.Conn{b}, ready)
	_, err = b.RecvBytes()
	assert.ErrorIs(t, err, pipe.ErrClosed)
}

// A Poll in progress returns ErrClosed as soon as another goroutine closes
// its Conn, as a Poll on a closed Conn does.
func TestPollWokenByClose(t *testing.T) {
	_, b := pair(t)
	closeSoon(t, b)
	start := time.Now()
	ok, err := b.Poll(5 * time.Second)
	assert.ErrorIs(t, err, pipe.ErrClosed)
	assert.False(t, ok)
	assert.Less(t, time.Since(start), 100*time.Millisecond+testbin.Slack, "Poll slept past the Close")
}

// The same for the read end of a Simplex (an OS pipe, which no shutdown
// can wake).
func TestWaitWokenByCloseSimplex(t *testing.T) {
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer w.Close()
	defer r.Close()
	closeSoon(t, r)
	start := time.Now()
	ready, err := pipe.Wait(testbin.ContextFor(t, 5*time.Second), r)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 100*time.Millisecond+testbin.Slack)
	assert.Equal(t, []*pipe.Conn{r}, ready)
}

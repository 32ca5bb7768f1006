//go:build linux

package shm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/shm"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/internal/wire"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

// seg travels to a child as a process argument.
type seg struct{ S *shm.Segment }

func init() {
	wire.RegisterHandle(99, // a test-only extension number
		func(s *seg, fds *wire.Files) ([]byte, error) {
			return s.S.EncodeState(fds)
		}, func(s *seg, state []byte, fds *wire.Files) error {
			var err error
			s.S, _, err = shm.DecodeState(state, fds)
			return err
		})
}

// bump sets word 0 to 1 and wakes its waiter, from another process.
var bump = process.Register("shm_test.bump", func(ctx context.Context, a *seg) error {
	defer a.S.Close()
	a.S.Uint32(0).Store(1)
	shm.Wake(a.S.Uint32(0), 1)
	return nil
})

func TestSharedAcrossProcesses(t *testing.T) {
	s, err := shm.New("test", 64)
	require.NoError(t, err)
	defer s.Close()
	p := process.New(bump, &seg{s})
	require.NoError(t, p.Start())
	w := s.Uint32(0)
	deadline := time.Now().Add(20 * time.Second)
	for w.Load() == 0 && time.Now().Before(deadline) {
		shm.Wait(w, 0, 100*time.Millisecond)
	}
	assert.Equal(t, uint32(1), w.Load(), "the child's store is visible here")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.Join(ctx))
}

func TestWaitTimesOut(t *testing.T) {
	s, err := shm.New("test", 8)
	require.NoError(t, err)
	defer s.Close()
	start := time.Now()
	shm.Wait(s.Uint32(4), 0, 20*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 15*time.Millisecond)
	// A value that differs returns at once.
	start = time.Now()
	shm.Wait(s.Uint32(4), 7, time.Second)
	assert.Less(t, time.Since(start), testbin.Slack)
	assert.Equal(t, 0, shm.Wake(s.Uint32(4), 1), "nobody waits")
}

func TestCloseAndState(t *testing.T) {
	before, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	s, err := shm.New("test", 100)
	require.NoError(t, err)
	s.Int64(8).Store(-5)
	var files wire.Files
	state, err := s.EncodeState(&files)
	require.NoError(t, err)
	got, rest, err := shm.DecodeState(append(state, 'x'), wire.Received(files.FDs()))
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), rest)
	assert.Equal(t, int64(-5), got.Int64(8).Load(), "the same memory")
	require.NoError(t, got.Close())
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.EncodeState(&files)
	assert.ErrorIs(t, err, shm.ErrClosed)
	_, _, err = shm.DecodeState([]byte{1, 2}, wire.Received(nil))
	assert.Error(t, err)
	_, err = shm.New("test", 0)
	assert.Error(t, err)
	assert.Panics(t, func() { s2, _ := shm.New("t", 8); defer s2.Close(); s2.Uint32(2) })
	after, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	assert.Len(t, after, len(before))
}

//go:build linux

package lock_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

// start starts a child and makes sure it is gone when the test ends.
func start[A any](t testing.TB, f process.Func[A], arg A) *process.Process {
	t.Helper()
	p := process.New(f, arg)
	require.NoError(t, p.Start())
	t.Cleanup(func() {
		p.Kill()
		<-p.Done()
	})
	return p
}

func join(t testing.TB, p *process.Process) {
	t.Helper()
	assert.NoError(t, p.Join(testbin.ContextFor(t, 30*time.Second)))
}

// shared is a memfd mapped in every process that receives it, for
// counters the tests read across processes.
func newShared(t testing.TB) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("lock-test", unix.MFD_CLOEXEC)
	require.NoError(t, err)
	require.NoError(t, unix.Ftruncate(fd, 4096))
	f := os.NewFile(uintptr(fd), "shared")
	t.Cleanup(func() { f.Close() })
	return f
}

func mapShared(f *os.File) ([]uint64, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), 512), nil
}

func mustMap(t testing.TB, f *os.File) []uint64 {
	t.Helper()
	w, err := mapShared(f)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4096)) })
	return w
}

func word(w []uint64, i int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&w[i])) }

// waitFor polls cond until it holds or ctx ends (for state in another
// process that has no wake-up of its own, like a shared counter).
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// holdArg asks a child to take one of the objects and then wait to be
// killed.
type holdArg struct {
	Lock  *lock.Lock
	RLock *lock.RLock
	Sem   *lock.Semaphore
	Held  *lock.Event
}

var holder = process.Register("lock.test.hold", func(ctx context.Context, a holdArg) error {
	var err error
	switch {
	case a.Lock != nil:
		err = a.Lock.Acquire(ctx)
	case a.RLock != nil:
		if err = a.RLock.Acquire(ctx); err == nil {
			err = a.RLock.Acquire(ctx) // two levels: death drops both
		}
	case a.Sem != nil:
		err = a.Sem.Acquire(ctx)
	}
	if err != nil {
		return err
	}
	if err := a.Held.Set(); err != nil {
		return err
	}
	<-ctx.Done() // until killed
	return nil
})

// holdThenKill starts a holder and SIGKILLs it once it holds.
func holdThenKill(t *testing.T, a holdArg) {
	t.Helper()
	held, err := lock.NewEvent()
	require.NoError(t, err)
	defer held.Close()
	a.Held = held
	p := start(t, holder, a)
	require.NoError(t, held.Wait(testbin.ContextFor(t, 20*time.Second)))
	require.NoError(t, p.Kill())
	err = p.Join(testbin.ContextFor(t, 20*time.Second))
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, -9, ee.Code)
}

// counterArg: increment word 0 of Mem N times under L, with a
// read-then-write that loses updates without the lock.
type counterArg struct {
	L   *lock.Lock
	Mem *os.File
	N   int
	Go  *lock.Event
}

var counter = process.Register("lock.test.counter", func(ctx context.Context, a counterArg) error {
	w, err := mapShared(a.Mem)
	if err != nil {
		return err
	}
	if a.Go != nil {
		if err := a.Go.Wait(ctx); err != nil {
			return err
		}
	}
	increment(a.L, word(w, 0), a.N)
	return nil
})

func increment(l *lock.Lock, x *atomic.Uint64, n int) {
	for range n {
		l.Lock()
		x.Store(x.Load() + 1)
		l.Unlock()
	}
}

//go:build linux

package sharedmem_test

import (
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m) // goleak, and no child process left running
}

// start starts a child and makes sure it is gone when the test ends.
func start[A any](t testing.TB, f process.Func[A], arg A, opts ...process.Option) *process.Process {
	t.Helper()
	p := process.New(f, arg, opts...)
	require.NoError(t, p.Start())
	t.Cleanup(func() {
		p.Kill()
		<-p.Done()
	})
	return p
}

func join(t testing.TB, p *process.Process) {
	t.Helper()
	assert.NoError(t, p.Join(testbin.ContextFor(t, 60*time.Second)))
}

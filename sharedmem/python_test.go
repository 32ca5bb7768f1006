//go:build linux

package sharedmem_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/sharedmem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// python runs a script with python3 (the test is skipped without it) and
// returns its output.
func python(t *testing.T, ctx context.Context, script string, args ...string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// Python before 3.13 registers every block it creates or opens with its
// resource tracker, which unlinks it when that process exits, even when
// other processes still use it (bpo-38119). The scripts unregister, as a
// Python program sharing a block with Go must (3.13+: track=False).
const pyPrelude = `
import sys
from multiprocessing import shared_memory, resource_tracker
def untrack(shm):
    resource_tracker.unregister(shm._name, "shared_memory")
`

// TestPythonCreates: Python creates a block, Go opens it by name, reads
// Python's bytes and writes its own, Python reads them and unlinks it.
func TestPythonCreates(t *testing.T) {
	ctx := testbin.Context(t)
	name := blockName(t)
	python(t, ctx, pyPrelude+`
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=1000)
untrack(shm)
shm.buf[:6] = b"python"
shm.close()
`, name)

	m, err := sharedmem.Open(name)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, 1000, m.Size(), "Python on Linux keeps the size it was given")
	assert.Equal(t, "python", string(m.Bytes()[:6]))
	copy(m.Bytes()[994:], "gopher")

	out := python(t, ctx, pyPrelude+`
shm = shared_memory.SharedMemory(name=sys.argv[1])
print(shm.size, bytes(shm.buf[994:1000]).decode())
shm.close()
shm.unlink()  # also unregisters it
`, name)
	assert.Equal(t, "1000 gopher\n", out)
	_, err = sharedmem.Open(name)
	assert.ErrorIs(t, err, sharedmem.ErrNotExist, "Python's unlink removed Go's view of the name")
}

// TestGoCreates: Go creates a block with float64s, Python reads them
// through its name, doubles them in place, and Go sees the result.
func TestGoCreates(t *testing.T) {
	ctx := testbin.Context(t)
	name := blockName(t)
	m, err := sharedmem.Create(name, 8*100)
	require.NoError(t, err)
	defer m.Close()
	defer m.Unlink()
	f, err := sharedmem.Slice[float64](m)
	require.NoError(t, err)
	for i := range f {
		f[i] = float64(i) + 0.5
	}
	out := python(t, ctx, pyPrelude+`
shm = shared_memory.SharedMemory(name=sys.argv[1])
untrack(shm)
a = shm.buf.cast("d")
print(shm.name, shm.size, len(a), sum(a))
for i in range(len(a)):
    a[i] *= 2
a.release()
shm.close()
`, name)
	assert.Equal(t, name+" 800 100 5000.0\n", out)
	for i, x := range f {
		if x != 2*(float64(i)+0.5) {
			t.Fatalf("element %d is %v after Python doubled it", i, x)
		}
	}
}

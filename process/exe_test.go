//go:build linux

package process_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A program whose executable was deleted, or replaced by another file (an
// upgrade in place), still starts children of its own build: they are
// executed from /proc/self/exe, which names the running inode.
func TestExecutableDeletedOrReplaced(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	for _, mode := range []string{"delete", "replace"} {
		t.Run(mode, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "copy.test")
			copyFile(t, self, bin)
			cmd := exec.CommandContext(testbin.Context(t), bin, "-test.run=^TestExeHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "MPGO_TEST_EXE="+mode)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "child ran from a "+mode+"d executable")
		})
	}
}

// TestExeHelper runs only inside TestExecutableDeletedOrReplaced's copy of
// the test binary: it removes or replaces its own file, then starts a child.
func TestExeHelper(t *testing.T) {
	mode := os.Getenv("MPGO_TEST_EXE")
	if mode == "" {
		t.Skip("helper for TestExecutableDeletedOrReplaced")
	}
	self, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.Remove(self))
	if mode == "replace" {
		require.NoError(t, os.WriteFile(self, []byte("#!/bin/sh\nexit 3\n"), 0o755))
	}
	require.NoError(t, run(t, process.New(noop, struct{}{})))
	var ee *process.ExitError
	require.ErrorAs(t, run(t, process.New(fail, "from the child")), &ee)
	require.Equal(t, "from the child", ee.Message)
	os.Stdout.WriteString("child ran from a " + mode + "d executable\n")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

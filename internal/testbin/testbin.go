// Package testbin builds the example programs for their end-to-end tests.
package testbin

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the main package in dir (relative to the calling test's
// directory; "." for the test's own package) into a temporary directory and
// returns the binary's path. The -race flag follows the test binary's, so a
// race-enabled CI run checks the examples too.
func Build(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(mustAbs(t, dir)))
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, dir)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

func mustAbs(t testing.TB, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

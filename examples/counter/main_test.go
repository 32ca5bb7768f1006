package main

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCounter runs the program end to end: the locked and the atomic ways
// end at 0; the unlocked one never goes below 0 (it usually stays above:
// lost updates, but that is up to the scheduler).
func TestCounter(t *testing.T) {
	bin := testbin.Build(t, ".")
	cmd := testbin.Command(t, 2*time.Minute, bin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("\n%s", out)
	final := func(way string) int {
		m := regexp.MustCompile(regexp.QuoteMeta(way) + `\s+final count\s+(-?\d+)`).FindSubmatch(out)
		require.NotNil(t, m, "no %q line in:\n%s", way, out)
		n, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, 0, final("in a Lock:"))
	assert.Equal(t, 0, final("atomic Add(-1):"))
	assert.GreaterOrEqual(t, final("no lock:"), 0)
}

package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := testbin.Command(t, time.Minute, bin, args...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// TestProdCons runs the program end to end in both modes and checks that
// every item was consumed exactly once (the program also checks, and exits
// with 1 otherwise) and that every consumer reported.
func TestProdCons(t *testing.T) {
	bin := testbin.Build(t, ".")
	out := run(t, bin, "-consumers", "4", "-items", "200", "-work", "100us")
	assert.Contains(t, out, "summary (stop markers): 200 items, 4 consumers, 200 consumed, each exactly once", out)
	assert.Len(t, regexp.MustCompile(`(?m)^consumer-\d took \d+ items`).FindAllString(out, -1), 4, out)

	out = run(t, bin, "-joinable", "-consumers", "3", "-items", "150", "-work", "100us", "-maxsize", "10")
	assert.Contains(t, out, "producer: all 150 items processed (Join returned)", out)
	assert.Contains(t, out, "summary (joinable): 150 items, 3 consumers, 150 consumed, each exactly once", out)
	assert.Len(t, regexp.MustCompile(`(?m)^consumer-\d took \d+ items`).FindAllString(out, -1), 3, out)

	// A bounded queue with more items than room, stop-marker mode.
	out = run(t, bin, "-consumers", "2", "-items", "500", "-maxsize", "3", "-work", "0")
	assert.Contains(t, out, "summary (stop markers): 500 items, 2 consumers, 500 consumed, each exactly once", out)
}

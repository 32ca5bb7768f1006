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

// TestSharedSum runs the program end to end: both ways give the exact sum,
// and the ticket sale sells exactly the stock.
func TestSharedSum(t *testing.T) {
	bin := testbin.Build(t, ".")
	cmd := testbin.Command(t, 2*time.Minute, bin, "-n", "3000000", "-workers", "3", "-tickets", "20000", "-buyers", "4")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("\n%s", out)
	assert.Contains(t, string(out), "shared Array: sum 1498500000 in")
	assert.Contains(t, string(out), "queue.Queue:  sum 1498500000 in")
	assert.Contains(t, string(out), "sums agree")
	m := regexp.MustCompile(`(?m)^sold: (\d+)$`).FindSubmatch(out)
	require.NotNil(t, m, string(out))
	sold, _ := strconv.Atoi(string(m[1]))
	assert.Equal(t, 20000, sold)
	assert.Contains(t, string(out), "stock left: 0")
}

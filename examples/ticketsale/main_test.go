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

func sale(t *testing.T, bin string, args ...string) (sold int, out string) {
	t.Helper()
	cmd := testbin.Command(t, time.Minute, bin, args...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	m := regexp.MustCompile(`(?m)^sold: (\d+)$`).FindSubmatch(b)
	require.NotNil(t, m, string(b))
	sold, _ = strconv.Atoi(string(m[1]))
	return sold, string(b)
}

func TestTicketSale(t *testing.T) {
	bin := testbin.Build(t, ".")

	sold, out := sale(t, bin, "-buyers", "8", "-tickets", "3", "-lock")
	assert.Equal(t, 3, sold, out)
	assert.Contains(t, out, `file says: {"count":0}`)
	assert.Equal(t, 5, len(regexp.MustCompile(`sold out`).FindAllString(out, -1)), out)

	// The lesson's other half: without the lock the buyers all read the
	// one ticket before anyone writes. (At least two must collide: with
	// a 200 ms race window, all eight do unless the machine stalls.)
	sold, out = sale(t, bin, "-buyers", "8", "-tickets", "1", "-lock=false", "-think", "200ms")
	assert.Greater(t, sold, 1, out)
	assert.Contains(t, out, "oversold")
}

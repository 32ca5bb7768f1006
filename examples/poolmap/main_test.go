package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolMap(t *testing.T) {
	bin := testbin.Build(t, ".")
	cmd := testbin.Command(t, time.Minute, bin, "-n", "300000", "-ranges", "12", "-workers", "2")
	var stderr []byte
	cmd.Stderr = writerFunc(func(b []byte) { stderr = append(stderr, b...) })
	out, err := cmd.Output()
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out, stderr)
	s := string(out)

	// Part 1: pi(300000) = 25997, and the progress line reached the end.
	assert.Contains(t, s, "pool of 2 workers started")
	assert.Contains(t, s, "25997 primes below 300000 (12 ranges")
	assert.Contains(t, string(stderr), "counting: 12/12 ranges\n")
	// stderr is a pipe here, not a terminal: progress comes in lines.
	assert.NotContains(t, string(stderr), "\r")

	// Part 2: the fourth range killed its worker; the other seven were
	// counted (pi(10000k) - pi(10000(k-1)) for the 10,000-wide ranges).
	assert.Regexp(t, `range \[30000, 40000\): worker died \(pid \d+, exit code 3\); the pool replaced it`, s)
	for _, want := range []string{
		"range [0, 10000): 1229 primes",
		"range [10000, 20000): 1033 primes",
		"range [20000, 30000): 983 primes",
		"range [40000, 50000): 930 primes",
		"range [50000, 60000): 924 primes",
		"range [60000, 70000): 878 primes",
		"range [70000, 80000): 902 primes",
	} {
		assert.Contains(t, s, want)
	}
	assert.Equal(t, 8, len(regexp.MustCompile(`(?m)^  range `).FindAllString(s, -1)), s)
	assert.Contains(t, s, "the pool goes on: 25 primes below 100")
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

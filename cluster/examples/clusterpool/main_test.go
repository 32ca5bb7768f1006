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

func TestClusterPool(t *testing.T) {
	bin := testbin.Build(t, ".")
	cmd := testbin.Command(t, 2*time.Minute, bin, "-n", "600000", "-ranges", "30", "-workers", "1", "-ackwait", "1s")
	var stderr []byte
	cmd.Stderr = writerFunc(func(b []byte) { stderr = append(stderr, b...) })
	out, err := cmd.Output()
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out, stderr)
	s := string(out)

	assert.Contains(t, s, "embedded NATS server at nats://127.0.0.1:")
	assert.Regexp(t, `host 1 \(pid \d+\) and host 2 \(pid \d+\) serve pool "primes", 1 workers each`, s)
	assert.Contains(t, string(stderr), "counting: 30/30 ranges")
	assert.Regexp(t, `killed host 1 \(pid \d+\) after \d+ of 30 ranges`, s)
	// pi(600000) = 49098: every range was counted exactly once, whichever
	// host counted it.
	assert.Contains(t, s, "49098 primes below 600000 (30 ranges in")
	m := regexp.MustCompile(`ranges counted: (\d+) by host 1, (\d+) by host 2`).FindStringSubmatch(s)
	require.NotNil(t, m, s)
	h1, _ := strconv.Atoi(m[1])
	h2, _ := strconv.Atoi(m[2])
	assert.Equal(t, 30, h1+h2)
	assert.Greater(t, h2, 15, "host 2 finished the killed host's tasks")
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSendmail(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-n", "8", "-max-delay", "200ms").CombinedOutput()
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 9)
	for _, l := range lines[:8] {
		assert.True(t, strings.HasPrefix(l, "sent mail to user"), l)
	}
	assert.Equal(t, "all mail sent", lines[8], "printed only after every sender was joined")
}

// Bad flags are a usage error, not a panic.
func TestSendmailBadFlags(t *testing.T) {
	bin := testbin.Build(t, ".")
	for _, args := range [][]string{{"-n", "-1"}, {"-max-delay", "-1ns"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", out)
		assert.Equal(t, 2, ee.ExitCode(), "%s", out)
		assert.NotContains(t, string(out), "panic", "%v", args)
	}
}

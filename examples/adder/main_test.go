package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdder(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "1 + 2 = 3\n3 + 4 = 7\n40 + 2 = 42\n-7 + 7 = 0\nadder exited cleanly\n", string(out))
}

// -h says what the program does; an argument it does not take is refused.
func TestAdderUsage(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "usage: adder")
	out, err = exec.CommandContext(ctx, bin, "extra").CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "usage: adder")
}

//go:build linux

package process_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// WithEnv overrides a variable the parent has, as os/exec's Cmd.Env does
// (the last entry for a key wins).
func TestEnvOverridesInherited(t *testing.T) {
	t.Setenv("MPGO_TEST_DUP", "parent")
	p := process.New(env, [2]string{"MPGO_TEST_DUP", "child"}, process.WithEnv("MPGO_TEST_DUP=child"))
	require.NoError(t, run(t, p))
}

func TestEnvInvalid(t *testing.T) {
	for _, kv := range []string{"NOEQUALS", "A=b\x00c", "=x"} {
		p := process.New(noop, struct{}{}, process.WithEnv(kv))
		err := p.Start()
		require.Error(t, err, "%q", kv)
		assert.Contains(t, err.Error(), "environment")
		assert.Equal(t, 0, p.Pid())
	}
}

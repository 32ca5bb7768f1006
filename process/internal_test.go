package process

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClipMessage(t *testing.T) {
	assert.Equal(t, "short", clipMessage("short", 10))
	s := strings.Repeat("é", 1000) // 2 bytes a rune
	for _, max := range []int{101, 100, 7} {
		got := clipMessage(s, max)
		assert.True(t, utf8.ValidString(got), "cut inside a rune at max %d", max)
		assert.True(t, strings.HasPrefix(got, "é"))
		assert.True(t, strings.HasSuffix(got, "é"))
		assert.Contains(t, got, "bytes elided")
		assert.Less(t, len(got), max+64)
	}
}

var takeBytes = Register("internal.bytes", func(ctx context.Context, b []byte) error { return nil })

// An argument over the child's bootstrap limit is an error from Start, not
// a child that dies saying it was started by hand.
func TestBootstrapTooLarge(t *testing.T) {
	defer func(old int) { maxBootstrapSize = old }(maxBootstrapSize)
	maxBootstrapSize = 1 << 20
	p := New(takeBytes, make([]byte, 2<<20))
	err := p.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the limit")
	assert.Equal(t, 0, p.Pid())
}

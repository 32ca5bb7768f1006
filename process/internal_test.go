package process

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
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

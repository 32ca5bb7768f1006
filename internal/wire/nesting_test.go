//go:build linux

package wire

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type node struct {
	Name string
	Next *node
}

type tree struct {
	Kids   []*tree
	parent *tree // unexported: msgpack does not encode it
	Up     *tree `msgpack:"-"`
}

// A cyclic value is an encoding error at the sender. msgpack itself would
// recurse until the goroutine's stack passed 1 GB, a fatal error that kills
// the whole process (recover cannot catch it).
func TestCyclicValueIsAnError(t *testing.T) {
	n := &node{Name: "a"}
	n.Next = &node{Name: "b", Next: n}
	m := map[string]any{"k": 1}
	m["self"] = m
	s := []any{1, 2}
	s[1] = s
	var x any
	x = &x
	for name, v := range map[string]any{"pointers": n, "map": m, "slice": s, "interface": &x} {
		_, _, err := Marshal(v)
		assert.ErrorIs(t, err, ErrTooDeep, name)
	}
}

// Cycles that msgpack does not follow (unexported or "-" fields) are fine,
// and so are deep values within the limit.
func TestNonCyclicValuesEncode(t *testing.T) {
	root := &tree{}
	kid := &tree{parent: root, Up: root}
	root.Kids = []*tree{kid, {parent: root}}
	b, _, err := Marshal(root)
	require.NoError(t, err)
	var back tree
	require.NoError(t, Unmarshal(b, nil, &back))
	assert.Len(t, back.Kids, 2)

	var chain *node
	for i := range MaxDepth - 1 {
		chain = &node{Name: string(rune('a' + i%26)), Next: chain}
	}
	b, _, err = Marshal(chain)
	require.NoError(t, err)
	var out node
	require.NoError(t, Unmarshal(b, nil, &out), "as deep as the receiver accepts")

	now := time.Now()
	_, _, err = Marshal(map[string]any{"t": now, "l": []any{now, &now, map[string]any{}}})
	require.NoError(t, err)
}

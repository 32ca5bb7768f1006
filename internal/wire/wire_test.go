//go:build linux

package wire

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

type sample struct {
	A int
	B string
	C []float64
	D map[string]any
	E *os.File
}

func TestRoundTrip(t *testing.T) {
	in := sample{A: -5, B: "x", C: []float64{1.5}, D: map[string]any{"k": "v"}}
	b, files, err := Marshal(in)
	require.NoError(t, err)
	assert.Nil(t, files)
	var out sample
	require.NoError(t, Unmarshal(b, nil, &out))
	assert.Equal(t, in, out)
}

func TestHandleNeedsFiles(t *testing.T) {
	_, err := msgpack.Marshal(sample{E: os.Stdin})
	assert.ErrorIs(t, err, ErrNoFiles)
	b, files, err := Marshal(sample{E: os.Stdin})
	require.NoError(t, err)
	require.Equal(t, 1, files.Len())
	var out sample
	assert.ErrorIs(t, Unmarshal(b, nil, &out), ErrNoFiles)
	require.NoError(t, files.Close())
}

func TestValidateRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"array32 claiming 4G": {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 claiming 4G":   {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 claiming 4G":   {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"truncated int64":     {0xd3, 1, 2},
		"unused code":         {0xc1},
		"trailing":            {0x01, 0x02},
		"empty":               {},
		"fixarray short":      {0x93, 0x01},
		"ext8 claiming past":  {0xc7, 0x10, 0x01},
	} {
		err := Validate(b)
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
	deep := make([]byte, MaxDepth+2)
	for i := range deep {
		deep[i] = 0x91
	}
	deep[len(deep)-1] = 0xc0
	assert.ErrorIs(t, Validate(deep), ErrMalformed)
}

// FuzzUnmarshal decodes arbitrary bytes into the shapes callers use: never a
// panic, never an allocation the input does not pay for.
func FuzzUnmarshal(f *testing.F) {
	good, _, _ := Marshal(sample{A: 1, B: "b", C: []float64{2}, D: map[string]any{"x": []any{1, "y"}}})
	f.Add(good)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc7, 0x01, byte(ExtFile), 0x00})
	f.Add([]byte{0x91, 0x91, 0x91, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		errV := Unmarshal(b, nil, &v)
		var s sample
		Unmarshal(b, Received(nil), &s)
		if Validate(b) != nil && errV == nil {
			t.Fatal("invalid input decoded")
		}
		if errV != nil && !errors.Is(errV, ErrMalformed) && Validate(b) != nil {
			t.Fatalf("unexpected error kind: %v", errV)
		}
	})
}

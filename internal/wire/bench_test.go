//go:build linux

package wire

import (
	"bytes"
	"testing"
)

type benchSmall struct {
	N int
	S string
}

// BenchmarkUnmarshalSmall: the decode of a small record, as Recv does for
// every message (Validate, Check, decode).
func BenchmarkUnmarshalSmall(b *testing.B) {
	data, _, _ := Marshal(benchSmall{1, "x"})
	var v benchSmall
	for b.Loop() {
		if err := Unmarshal(data, nil, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalAny: 100 numbers and strings into an any.
func BenchmarkUnmarshalAny(b *testing.B) {
	s := make([]any, 100)
	for i := range s {
		if i%2 == 0 {
			s[i] = i * 1000
		} else {
			s[i] = "abc"
		}
	}
	data, _, _ := Marshal(s)
	for b.Loop() {
		var v any
		if err := Unmarshal(data, nil, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloat64s: a 1 MiB []float64 (what a Queue item of
// sharedmem's BenchmarkHandOffQueue is) encoded as Send does and decoded
// as Recv does (Validate, then the decode into a reused slice).
func BenchmarkFloat64s(b *testing.B) {
	s := make([]float64, 128<<10)
	for i := range s {
		s[i] = float64(i&1023) + 0.5
	}
	b.Run("Encode", func(b *testing.B) {
		var buf bytes.Buffer
		b.SetBytes(int64(len(s) * 8))
		for b.Loop() {
			buf.Reset()
			if err := AppendTo(&buf, nil, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode", func(b *testing.B) {
		data, _, _ := Marshal(s)
		var out []float64
		b.SetBytes(int64(len(s) * 8))
		for b.Loop() {
			if err := Unmarshal(data, nil, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

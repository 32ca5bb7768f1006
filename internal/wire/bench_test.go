//go:build linux

package wire

import "testing"

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

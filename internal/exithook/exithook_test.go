//go:build linux

package exithook

import (
	"errors"
	"fmt"
	"testing"
)

func TestRunJoinsErrorsOnce(t *testing.T) {
	var order []int
	e1, e3 := errors.New("one"), errors.New("three")
	Register(func() error { order = append(order, 1); return e1 })
	Register(func() error { order = append(order, 2); return nil })
	Register(func() error { order = append(order, 3); return e3 })
	err := Run()
	if !errors.Is(err, e1) || !errors.Is(err, e3) {
		t.Fatalf("Run() = %v, want both hook errors", err)
	}
	if fmt.Sprint(order) != "[3 2 1]" {
		t.Fatalf("hooks ran in order %v, want reverse registration", order)
	}
	if err := Run(); err != nil || len(order) != 3 {
		t.Fatalf("second Run: %v, %d hooks ran in all", err, len(order))
	}
}

func TestSentinelCodesRoundTrip(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	Sentinel("test.A", a)
	Sentinel("test.B", b)
	err := fmt.Errorf("wrapped: %w", errors.Join(a, errors.New("other")))
	codes := Codes(err)
	if fmt.Sprint(codes) != "[test.A]" {
		t.Fatalf("Codes = %v, want [test.A]", codes)
	}
	back := Sentinels(append(codes, "test.Unknown"))
	if len(back) != 1 || back[0] != a {
		t.Fatalf("Sentinels = %v, want [a]", back)
	}
	if Codes(nil) != nil {
		t.Fatal("Codes(nil) is not empty")
	}
}

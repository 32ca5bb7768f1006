//go:build linux

package testbin

import (
	"context"
	"testing"
	"time"
)

// Timeout bounds every test's blocking calls: long enough for a loaded
// 2-core machine under the race detector, short enough that a hang fails
// the test instead of the whole run.
const Timeout = 30 * time.Second

// RaceEnabled reports whether the test binary was built with -race.
const RaceEnabled = raceEnabled

// Context returns a context that ends after Timeout or when the test ends.
func Context(t testing.TB) context.Context {
	return ContextFor(t, Timeout)
}

// ContextFor returns a context that ends after d or when the test ends.
func ContextFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

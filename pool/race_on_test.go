//go:build race

package pool_test

// raceEnabled: the race detector's shadow memory counts against
// RLIMIT_DATA, so memory limit tests cannot run under it.
const raceEnabled = true

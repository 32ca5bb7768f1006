//go:build linux

package testbin

// Slack is what a test adds to a timing upper bound for scheduling delays:
// on a loaded 2-core machine (CI runs two packages at once, each starting
// processes) a goroutine can wait hundreds of milliseconds for a CPU. An
// upper bound proves "returns near its deadline, does not hang"; the lower
// bounds beside them prove that the wait really happened.
const Slack = slack

//go:build linux

package lock

// MaxCheck is the longest a waiter sleeps before it checks whether the
// holder is alive: the tests' bound on noticing a death, before slack.
const MaxCheck = maxCheck

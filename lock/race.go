//go:build linux && race

package lock

import (
	"runtime"
	"unsafe"
)

// The race detector ignores atomics on memory outside the Go heap, so it
// would not see that our shared-memory lock orders the Go memory it guards
// between goroutines of one process. Tell it, as sync.Mutex does.

func raceAcquire(c *core) { runtime.RaceAcquire(unsafe.Pointer(&c.raceAnchor)) }

func raceRelease(c *core) { runtime.RaceReleaseMerge(unsafe.Pointer(&c.raceAnchor)) }

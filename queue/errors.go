//go:build linux

package queue

import (
	"errors"

	"github.com/mpgo/multiprocessing/internal/exithook"
)

var (
	// ErrEmpty is returned by TryGet when no item is waiting (Python's
	// queue.Empty).
	ErrEmpty = errors.New("queue: empty")
	// ErrFull is returned by TryPut when a bounded queue holds maxsize
	// items (Python's queue.Full).
	ErrFull = errors.New("queue: full")
	// ErrClosed is returned by every operation of a queue that this
	// process has closed. Other processes are unaffected.
	ErrClosed = errors.New("queue: closed")
	// ErrTaskDone is returned by TaskDone called more times than items
	// were taken (Python: "task_done() called too many times").
	ErrTaskDone = errors.New("queue: TaskDone called more times than items were taken")
	// ErrTaskLost is returned by Join when it returns because the tasks it
	// waited for were lost with a process that died (a consumer killed
	// holding an item, a producer killed before its item reached the
	// pipe) rather than marked done. Python's join would wait forever.
	ErrTaskLost = errors.New("queue: tasks lost with a process that died")
	// ErrNotFlushed is returned by Close, by process.Shutdown and by the
	// Join of a worker process when items the process put were still
	// buffered and no process read the queue for the flush timeout (see
	// WithFlushTimeout): those items are lost, and the error says how
	// many. A worker that exits so fails (exit code 1) even when its
	// function returned nil.
	ErrNotFlushed = errors.New("queue: buffered items were never written")
	// ErrTooLarge is returned by Put for an item whose encoding exceeds
	// MaxItemSize.
	ErrTooLarge = errors.New("queue: item too large")
)

// The sentinels travel from a worker to its parent: errors.Is on the
// *process.ExitError of a worker that failed with one of them matches it.
func init() {
	for code, err := range map[string]error{
		"queue.ErrEmpty":      ErrEmpty,
		"queue.ErrFull":       ErrFull,
		"queue.ErrClosed":     ErrClosed,
		"queue.ErrTaskDone":   ErrTaskDone,
		"queue.ErrTaskLost":   ErrTaskLost,
		"queue.ErrNotFlushed": ErrNotFlushed,
		"queue.ErrTooLarge":   ErrTooLarge,
	} {
		exithook.Sentinel(code, err)
	}
}

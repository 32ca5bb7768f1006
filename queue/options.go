//go:build linux

package queue

import "time"

// Option configures New and NewJoinable.
type Option interface{ apply(*options) }

type options struct {
	flushTimeout time.Duration
}

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

// defaultFlushTimeout is how long Close and a worker's exit wait for a
// reader while nothing moves.
const defaultFlushTimeout = 10 * time.Second

// WithFlushTimeout sets how long Close (and a worker process at exit, and
// process.Shutdown) keeps waiting for readers to take this process's
// buffered items while none is taken; 10 s by default. Waiting goes on as
// long as readers make progress; what is left then is reported as lost
// (ErrNotFlushed). The setting travels with the queue to other processes.
func WithFlushTimeout(d time.Duration) Option {
	return optFunc(func(o *options) {
		if d > 0 {
			o.flushTimeout = d
		}
	})
}

//go:build linux

package cluster

import "errors"

var (
	// ErrInsecure is returned by Start for a listen address other than
	// loopback without TLS, and by Connect for a Token sent to a host other
	// than loopback without TLS: a NATS token travels in clear in the
	// CONNECT line, so it may cross a network only inside TLS.
	ErrInsecure = errors.New("cluster: insecure: a token or an open server beyond loopback needs TLS")
	// ErrInvalidOption is returned by a function given an option it does not
	// use, or an option with a value out of range. The message names the
	// option and the function.
	ErrInvalidOption = errors.New("cluster: invalid option")
	// ErrNoWorkers is returned by OpenPool when no host serves the pool with
	// this build before ctx ends.
	ErrNoWorkers = errors.New("cluster: no workers serve the pool")
	// ErrLost is matched by the error of Joinable.Join when items reached
	// MaxDeliver deliveries without TaskDone and were dropped, and by a pool
	// task delivered MaxDeliver times without a result. The error says how
	// many.
	ErrLost = errors.New("cluster: lost after MaxDeliver deliveries")
)

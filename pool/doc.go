// Package pool provides a fixed-size pool of worker processes, the
// analogue of Python's multiprocessing.Pool, that never hangs when a worker
// dies.
package pool

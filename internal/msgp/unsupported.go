//go:build !linux

package msgp

// This module runs on Linux only: it is built on pidfds, memfd, futexes
// and Linux's poll flags. On another system the build stops here, on an
// identifier that says so.
var _ = multiprocessing_requires_Linux

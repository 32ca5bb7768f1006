//go:build linux

package cluster

// SetBuildID makes this process claim another build of the program, so that
// a test can run a host of "another build" from the same test binary. It
// must be called before the first OpenPool or ServePool of the process.
func SetBuildID(id string) { buildVal = id }

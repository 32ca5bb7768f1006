//go:build linux

package cluster_test

import (
	"testing"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	process.Init()
	testbin.VerifyTestMain(m)
}

// startServer starts an embedded server for one test, on 127.0.0.1 with
// its store in the test's temporary directory, and closes it when the test
// ends.
func startServer(t testing.TB, opts ...cluster.Option) *cluster.Server {
	t.Helper()
	opts = append([]cluster.Option{cluster.StoreDir(t.TempDir())}, opts...)
	s, err := cluster.Start(testbin.Context(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// connect connects to url for one test and closes the connection when the
// test ends.
func connect(t testing.TB, url string, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Connect(testbin.Context(t), url, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// setup starts a server for one test and connects to it.
func setup(t testing.TB) (*cluster.Server, *cluster.Cluster) {
	t.Helper()
	s := startServer(t)
	return s, connect(t, s.URL())
}

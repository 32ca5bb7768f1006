//go:build linux

package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// netnsHostArg tells a host in a network namespace what to serve.
type netnsHostArg struct {
	URL, Pool, NetNS string
	CA               []byte // PEM
}

// netnsHost serves a pool from inside a network namespace: its connection
// to the server crosses a veth pair that the test can cut. The namespace is
// entered by the thread that dials (a network namespace belongs to a
// thread), so the connection's socket lives in it.
var netnsHost = process.Register("cluster.test.netnsHost", func(ctx context.Context, a netnsHostArg) error {
	runtime.LockOSThread() // this thread leaves the namespace only by dying
	f, err := os.Open("/var/run/netns/" + a.NetNS)
	if err != nil {
		return err
	}
	err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	f.Close()
	if err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CA)
	c, err := cluster.Connect(ctx, a.URL, cluster.TLS(&tls.Config{RootCAs: roots}))
	if err != nil {
		return err
	}
	defer c.Close()
	return cluster.ServePool(ctx, c, a.Pool, pool.Workers(1))
})

// netns is a network namespace joined to this one by a veth pair.
type netns struct {
	name, outer    string
	outerIP, inner net.IP
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %v: %s", args, out)
}

// newNetns makes a namespace and a veth pair, or skips the test where the
// machine does not allow it (not root, no ip command).
func newNetns(t *testing.T) *netns {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command")
	}
	id := os.Getpid() % 100000
	n := &netns{
		name:    fmt.Sprintf("mpgo%d", id),
		outer:   fmt.Sprintf("mpv%do", id),
		outerIP: net.IPv4(10, 215, byte(id%250), 1),
		inner:   net.IPv4(10, 215, byte(id%250), 2),
	}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.outer).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	inner := fmt.Sprintf("mpv%di", id)
	ipCmd(t, "link", "add", n.outer, "type", "veth", "peer", "name", inner)
	ipCmd(t, "link", "set", inner, "netns", n.name)
	ipCmd(t, "addr", "add", n.outerIP.String()+"/24", "dev", n.outer)
	ipCmd(t, "link", "set", n.outer, "up")
	ipCmd(t, "-n", n.name, "addr", "add", n.inner.String()+"/24", "dev", inner)
	ipCmd(t, "-n", n.name, "link", "set", inner, "up")
	ipCmd(t, "-n", n.name, "link", "set", "lo", "up")
	return n
}

// vethCert returns a TLS certificate for ip and its PEM.
func vethCert(t *testing.T, ip net.IP) (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mpgo test"},
		IPAddresses:  []net.IP{ip},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A host cut off from the server by its network, not killed: its task goes
// to another host after AckWait; when the link heals, its late result
// arrives and is dropped as a duplicate.
func TestPoolHostCutOffAndHealed(t *testing.T) {
	n := newNetns(t)
	cert, caPEM := vethCert(t, n.outerIP)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	srv, err := cluster.Start(testbin.Context(t), cluster.Listen(net.JoinHostPort(n.outerIP.String(), "0")),
		cluster.StoreDir(t.TempDir()), cluster.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	clientTLS := cluster.TLS(&tls.Config{RootCAs: roots})
	c := connect(t, srv.URL(), clientTLS)

	file := filepath.Join(t.TempDir(), "marks")
	a := process.New(netnsHost, netnsHostArg{URL: srv.URL(), Pool: "cut", NetNS: n.name, CA: caPEM})
	require.NoError(t, a.Start())
	t.Cleanup(func() { a.Kill(); a.Join(context.Background()) })
	p := openPool(t, c, "cut", 1, cluster.AckWait(time.Second))
	ctx := testbin.Context(t)
	ar := pool.ApplyAsync(p, mark, markArg{File: file, I: 4, Ms: 300})
	waitFor(t, func() bool { return len(readLines(t, file)) == 1 })

	ipCmd(t, "link", "set", n.outer, "down") // A is cut off, and alive
	bh := process.New(poolHostTLS, hostTLSArg{URL: srv.URL(), Pool: "cut", CA: caPEM})
	require.NoError(t, bh.Start())
	t.Cleanup(func() { bh.Kill(); bh.Join(context.Background()) })
	start := time.Now()
	v, err := ar.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, v)
	assert.Greater(t, time.Since(start), 500*time.Millisecond, "redelivered only after AckWait")

	time.Sleep(time.Second)
	ipCmd(t, "link", "set", n.outer, "up") // healed: A's result arrives late
	waitFor(t, func() bool { st, _ := cluster.Stats(p); return st.Duplicates >= 1 })
	assert.Len(t, readLines(t, file), 2)
	closePool(t, p)
	require.True(t, a.IsAlive(), "A was cut off, not killed")
	a.Signal(syscall.SIGINT)
}

type hostTLSArg struct {
	URL, Pool string
	CA        []byte
}

// poolHostTLS is poolHost for a server that speaks TLS.
var poolHostTLS = process.Register("cluster.test.poolHostTLS", func(ctx context.Context, a hostTLSArg) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CA)
	c, err := cluster.Connect(ctx, a.URL, cluster.TLS(&tls.Config{RootCAs: roots}))
	if err != nil {
		return err
	}
	defer c.Close()
	return cluster.ServePool(ctx, c, a.Pool, pool.Workers(1))
})

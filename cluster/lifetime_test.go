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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/cluster"
	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/queue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Everything a test opens is closed by Close: no descriptor outlives the
// server and the connection (goroutines are checked by TestMain).
func TestNoLeaks(t *testing.T) {
	before := testbin.FDCount(t)
	ctx := testbin.Context(t)
	s, err := cluster.Start(ctx)
	require.NoError(t, err)
	c, err := cluster.Connect(ctx, s.URL())
	require.NoError(t, err)
	q, err := cluster.OpenQueue[int](ctx, c, "q")
	require.NoError(t, err)
	j, err := cluster.OpenJoinable[int](ctx, c, "j", cluster.AckWait(time.Second))
	require.NoError(t, err)
	d, err := cluster.OpenDict[string, int](ctx, c, "d")
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, q.Put(ctx, i))
		require.NoError(t, j.Put(ctx, i))
		_, err := d.Add(ctx, "k", 1)
		require.NoError(t, err)
	}
	_, err = q.Get(ctx)
	require.NoError(t, err)
	_, err = j.Get(ctx)
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	changes := d.Watch(wctx)
	require.NoError(t, d.Set(ctx, "w", 1))
	for _, err := range changes {
		require.NoError(t, err)
		break
	}
	_ = d.Watch(wctx) // never ranged over: ends with its ctx
	cancel()
	require.NoError(t, q.Close())
	require.NoError(t, j.Close())
	require.NoError(t, d.Close())
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	assert.Equal(t, before, testbin.FDCount(t), "descriptors after Close")
}

func TestCloseGivesBackTakenAhead(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	a, err := cluster.OpenQueue[int](ctx, c, "ahead")
	require.NoError(t, err)
	for i := range 200 {
		require.NoError(t, a.Put(ctx, i))
	}
	require.NoError(t, a.Flush(ctx))
	// Quick Gets make the handle take items ahead.
	for i := range 20 {
		v, err := a.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, a.Close())
	b, err := cluster.OpenQueue[int](ctx, connect(t, s.URL()), "ahead")
	require.NoError(t, err)
	defer b.Close()
	seen := map[int]bool{}
	for range 180 {
		v, err := b.Get(ctx)
		require.NoError(t, err)
		require.False(t, seen[v], "item %d twice", v)
		require.GreaterOrEqual(t, v, 20, "item %d was returned before", v)
		seen[v] = true
	}
	_, err = b.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

// selfSigned returns a server TLS config for 127.0.0.1 and a client config
// that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mpgo test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func TestTLSAndToken(t *testing.T) {
	ctx := testbin.Context(t)
	srv, cli := selfSigned(t)
	// Beyond loopback with TLS is allowed; the test dials it on 127.0.0.1.
	s := startServer(t, cluster.Listen("0.0.0.0:0"), cluster.TLS(srv), cluster.Token("secret"))
	assert.Regexp(t, `^tls://`, s.URL())
	_, port, err := net.SplitHostPort(s.URL()[len("tls://"):])
	require.NoError(t, err)
	url := "tls://127.0.0.1:" + port
	c := connect(t, url, cluster.TLS(cli), cluster.Token("secret"))
	q, err := cluster.OpenQueue[string](ctx, c, "tls")
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, q.Put(ctx, "over TLS"))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "over TLS", v)
	_, err = cluster.Connect(ctx, url, cluster.TLS(cli), cluster.Token("wrong"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrong or missing token")
	_, err = cluster.Connect(ctx, "nats://127.0.0.1:"+port, cluster.Token("secret"))
	assert.Error(t, err, "a client without TLS is refused")
}

func TestCredentialsFileErrors(t *testing.T) {
	ctx := testbin.Context(t)
	s := startServer(t)
	_, err := cluster.Connect(ctx, s.URL(), cluster.Credentials(filepath.Join(t.TempDir(), "missing")))
	assert.ErrorContains(t, err, "credentials")
	bad := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, err = cluster.Connect(ctx, s.URL(), cluster.Credentials(bad))
	assert.ErrorContains(t, err, "neither a NATS credentials file nor an NKey")
}

func TestConnectBadURL(t *testing.T) {
	ctx := testbin.Context(t)
	_, err := cluster.Connect(ctx, " , ")
	assert.Error(t, err)
	// Nothing listens there: a clear error, within the ctx.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = cluster.Connect(short, "nats://127.0.0.1:1")
	assert.Error(t, err)
}

// A Get given up on leaves its pull request on the server for up to a
// second; an item put after the handle closed must go to another consumer
// at once, not after AckWait (30 s) to the closed handle's inbox. (The
// server drops a pull request whose inbox nobody subscribes to any more.)
func TestCloseAfterCancelledGetLosesNothing(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	a, err := cluster.OpenQueue[int](ctx, c, "late")
	require.NoError(t, err)
	b, err := cluster.OpenQueue[int](ctx, connect(t, s.URL()), "late")
	require.NoError(t, err)
	defer b.Close()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = a.Get(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The request a's Get sent asked for up to pullSlice (1 s) or the
	// ctx's deadline, whichever came first; use a ctx without deadline.
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	_, err = a.Get(cctx)
	require.ErrorIs(t, err, context.Canceled)
	go func() {
		time.Sleep(200 * time.Millisecond)
		assert.NoError(t, b.Put(ctx, 42))
	}()
	require.NoError(t, a.Close())
	got, gcancel := context.WithTimeout(ctx, 5*time.Second)
	defer gcancel()
	v, err := b.Get(got)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
}

// Closing the connection closes the queues still open on it (their
// goroutines end: TestMain's leak check), and nothing opens on it after.
func TestClusterCloseClosesQueues(t *testing.T) {
	ctx := testbin.Context(t)
	s := startServer(t)
	c, err := cluster.Connect(ctx, s.URL())
	require.NoError(t, err)
	q, err := cluster.OpenQueue[int](ctx, c, "q")
	require.NoError(t, err)
	j, err := cluster.OpenJoinable[int](ctx, c, "j", cluster.AckWait(time.Second))
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, 1))
	require.NoError(t, c.Close())
	assert.ErrorIs(t, q.Put(ctx, 2), queue.ErrClosed)
	_, err = j.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	_, err = cluster.OpenQueue[int](ctx, c, "q")
	assert.Error(t, err)
	// The item put before Close was flushed by it.
	c2 := connect(t, s.URL())
	q2, err := cluster.OpenQueue[int](ctx, c2, "q")
	require.NoError(t, err)
	defer q2.Close()
	v, err := q2.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
}

// An item that a cancelled Get's pull request brings late goes back to the
// queue at once: another consumer gets it, and the handle whose Get gave
// up never returns it as well.
func TestCancelledGetKeepsNothing(t *testing.T) {
	ctx := testbin.Context(t)
	s, c := setup(t)
	a, err := cluster.OpenQueue[int](ctx, c, "late")
	require.NoError(t, err)
	defer a.Close()
	b, err := cluster.OpenQueue[int](ctx, connect(t, s.URL()), "late")
	require.NoError(t, err)
	defer b.Close()
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = a.Get(cctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, b.Put(ctx, 42))
	require.NoError(t, b.Flush(ctx))
	got, gcancel := context.WithTimeout(ctx, 5*time.Second) // AckWait is 30 s
	defer gcancel()
	v, err := b.Get(got)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	_, err = a.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty, "the item was returned twice")
}

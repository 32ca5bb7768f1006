//go:build linux

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a connection to a NATS server or cluster with JetStream: the
// embedded one of Start, or a real one. Queues, dicts and pools are opened
// on it. It is safe for concurrent use; one per process is enough.
type Cluster struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	handles map[io.Closer]struct{} // open queues: Close closes them first
	closed  bool

	closeOnce sync.Once
}

// track registers h to be closed by Close; false when the Cluster is
// closed already.
func (c *Cluster) track(h io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.handles == nil {
		c.handles = map[io.Closer]struct{}{}
	}
	c.handles[h] = struct{}{}
	return true
}

func (c *Cluster) untrack(h io.Closer) {
	c.mu.Lock()
	delete(c.handles, h)
	c.mu.Unlock()
}

// defaultConnectTimeout bounds a dial when ctx has no deadline.
const defaultConnectTimeout = 5 * time.Second

// Connect connects to the NATS server at url, or to a cluster: several URLs
// separated by commas, tried in order (the client also learns the other
// members from the server and reconnects to them when one fails). It
// accepts the options Token, TLS and Credentials. ctx bounds the dial.
//
// A Token sent to a host other than loopback needs TLS (the TLS option or a
// tls:// URL): ErrInsecure otherwise. A server that refuses the token or
// credentials gives an error that says so.
func Connect(ctx context.Context, url string, opts ...Option) (*Cluster, error) {
	o, err := parseOptions("Connect", opts, "Token", "TLS", "Credentials")
	if err != nil {
		return nil, err
	}
	urls, err := splitURLs(url)
	if err != nil {
		return nil, err
	}
	if o.token != "" && o.tlsConfig == nil {
		for _, u := range urls {
			if u.Scheme != "tls" && !isLoopback(u.Hostname()) {
				return nil, fmt.Errorf("%w: Connect: a Token sent to %s would travel in clear: give TLS or a tls:// URL", ErrInsecure, u.Host)
			}
		}
	}
	timeout := defaultConnectTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		return nil, fmt.Errorf("cluster: connect %s: %w", url, context.DeadlineExceeded)
	}
	nopts := []nats.Option{
		nats.Name("mpgo-cluster"),
		nats.Timeout(timeout),
		// The client must notice a dead server within seconds, not the
		// default two minutes, so that a blocked Get returns or moves on.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
	}
	if o.token != "" {
		nopts = append(nopts, nats.Token(o.token))
	}
	if o.tlsConfig != nil {
		nopts = append(nopts, nats.Secure(o.tlsConfig.Clone()))
	}
	if o.creds != "" {
		copt, err := credentialsOption(o.creds)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, copt)
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			return nil, fmt.Errorf("cluster: connect %s: refused: wrong or missing token or credentials: %w", url, err)
		}
		return nil, fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	return &Cluster{nc: nc, js: js}, nil
}

// splitURLs parses the comma-separated server URLs Connect takes. A URL
// without a scheme is nats://.
func splitURLs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("cluster: connect: bad URL %q: %w", part, err)
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("cluster: connect: URL %q has no host", part)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster: connect: no URL in %q", s)
	}
	return out, nil
}

// credentialsOption reads file and returns the NATS option for it: a
// credentials file (user JWT and seed) or a bare NKey seed file.
func credentialsOption(file string) (nats.Option, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect: credentials: %w", err)
	}
	switch {
	case bytes.Contains(b, []byte("BEGIN NATS USER JWT")):
		return nats.UserCredentials(file), nil
	case bytes.Contains(b, []byte("SU")):
		opt, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return nil, fmt.Errorf("cluster: connect: NKey seed file %s: %w", file, err)
		}
		return opt, nil
	}
	return nil, fmt.Errorf("cluster: connect: %s is neither a NATS credentials file nor an NKey user seed", file)
}

// Close closes the queues opened on this connection that are still open
// (each as its own Close does: publishes flushed, items taken ahead given
// back), then the connection. Dicts opened on it stop working. Close is
// idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		hs := c.handles
		c.handles = nil
		c.mu.Unlock()
		for h := range hs {
			_ = h.Close()
		}
		if c.nc.IsConnected() {
			_ = c.nc.FlushTimeout(defaultConnectTimeout)
		}
		c.nc.Close()
	})
	return nil
}

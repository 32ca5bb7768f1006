//go:build linux

package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server with JetStream running in this process: the
// embedded head node of a cluster, or the whole cluster of a test or of one
// machine.
type Server struct {
	ns       *server.Server
	url      string
	tmpStore string // the store directory Start made, removed by Close

	closeOnce sync.Once
	closeErr  error
}

// Start starts a NATS server with JetStream, with file storage, in this
// process. It accepts the options Listen (default "127.0.0.1:0", a free
// port), StoreDir (default a temporary directory that Close removes),
// Token and TLS. ctx bounds the start-up only.
//
// A server that listens beyond loopback must serve TLS: without it Start
// returns ErrInsecure, with a Token or not (a token crosses the network in
// clear otherwise). Clients are then authenticated by the Token, or by
// client certificates when the TLS config asks for them.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	o, err := parseOptions("Start", opts, "Listen", "StoreDir", "Token", "TLS")
	if err != nil {
		return nil, err
	}
	host, portStr, _ := net.SplitHostPort(o.listen) // checked by Listen
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: Listen %q: %v", ErrInvalidOption, o.listen, err)
	}
	if !isLoopback(host) && o.tlsConfig == nil {
		return nil, fmt.Errorf("%w: Start: listening on %q needs TLS (Token alone would travel in clear)", ErrInsecure, o.listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port 4222
	}
	s := &Server{}
	store := o.storeDir
	if store == "" {
		if store, err = os.MkdirTemp("", "mpgo-cluster-"); err != nil {
			return nil, fmt.Errorf("cluster: start: %w", err)
		}
		s.tmpStore = store
	}
	sopts := &server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  store,
		NoLog:     true,
		NoSigs:    true, // the program owns its signals, not the embedded server
		// Without a server name the store is keyed by a random one: a restart
		// on the same StoreDir would not find its streams.
		ServerName:    "mpgo",
		Authorization: o.token,
	}
	if o.tlsConfig != nil {
		sopts.TLS = true
		sopts.TLSConfig = o.tlsConfig
		sopts.TLSTimeout = 2
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		s.removeTmp()
		return nil, fmt.Errorf("cluster: start: %w", err)
	}
	s.ns = ns
	ns.Start()
	if err := waitReady(ctx, ns); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		s.removeTmp()
		return nil, err
	}
	s.url = ns.ClientURL()
	return s, nil
}

// waitReady waits until ns accepts clients and JetStream answers, or ctx
// ends.
func waitReady(ctx context.Context, ns *server.Server) error {
	for {
		if ns.ReadyForConnections(10 * time.Millisecond) {
			if ns.JetStreamEnabled() {
				return nil
			}
			return errors.New("cluster: start: JetStream did not start (store directory not writable?)")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: start: server not ready: %w", ctx.Err())
		default:
		}
	}
}

// isLoopback reports whether host names only this machine. A name that is
// neither "localhost" nor an IP address might resolve to anything: it
// counts as the network.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL returns the address clients give Connect: "nats://HOST:PORT", or
// "tls://HOST:PORT" when the server serves TLS.
func (s *Server) URL() string { return s.url }

// Close shuts the server down gracefully and waits until it has: the
// streams are written to the store, so a server started again on the same
// StoreDir finds what was queued. A store directory Start made is removed.
// Clients see their connection drop. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.closeErr = s.removeTmp()
	})
	return s.closeErr
}

func (s *Server) removeTmp() error {
	if s.tmpStore == "" {
		return nil
	}
	if err := os.RemoveAll(s.tmpStore); err != nil {
		return fmt.Errorf("cluster: close: removing the store: %w", err)
	}
	return nil
}

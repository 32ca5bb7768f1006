//go:build linux

package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// Option configures Start, Connect, OpenQueue, OpenJoinable and OpenPool.
// There is one option type for the package; each function accepts the
// options its documentation lists and returns an error matching
// ErrInvalidOption, naming the option and the function, for any other.
type Option interface {
	// optionName is the exported name of the option, for error messages
	// and for checking where it is accepted. Unexported: only this
	// package makes options.
	optionName() string
	apply(*options) error
}

// Defaults of the options that have one.
const (
	defaultListen     = "127.0.0.1:0"
	defaultAckWait    = 30 * time.Second
	defaultMaxDeliver = 3
)

// options is the union of every option's setting. The set map says which
// options were given, so that a value given explicitly can be checked
// against an existing queue's (a default must not be).
type options struct {
	listen     string
	storeDir   string
	token      string
	tlsConfig  *tls.Config
	creds      string
	maxSize    int
	ackWait    time.Duration
	maxDeliver int
	set        map[string]bool
}

type option struct {
	name string
	fn   func(*options) error
}

func (o option) optionName() string        { return o.name }
func (o option) apply(opts *options) error { return o.fn(opts) }

// parseOptions applies opts for the function fn, which accepts the options
// named in accept; any other is ErrInvalidOption.
func parseOptions(fn string, opts []Option, accept ...string) (*options, error) {
	o := &options{
		listen:     defaultListen,
		ackWait:    defaultAckWait,
		maxDeliver: defaultMaxDeliver,
		set:        map[string]bool{},
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil Option given to %s", ErrInvalidOption, fn)
		}
		name := opt.optionName()
		ok := false
		for _, a := range accept {
			ok = ok || a == name
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s does not take %s (it takes %s)", ErrInvalidOption, fn, name, strings.Join(accept, ", "))
		}
		if err := opt.apply(o); err != nil {
			return nil, fmt.Errorf("%w: %s given to %s: %v", ErrInvalidOption, name, fn, err)
		}
		o.set[name] = true
	}
	return o, nil
}

// Listen sets the address Start serves on, "HOST:PORT" (Start; default
// "127.0.0.1:0": loopback, a free port). A host other than loopback needs
// TLS (ErrInsecure otherwise).
func Listen(hostport string) Option {
	return option{"Listen", func(o *options) error {
		_, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return err
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return err
		}
		o.listen = hostport
		return nil
	}}
}

// StoreDir sets the directory of the server's file storage (Start; default
// a temporary directory removed by Server.Close). A server started again on
// the same directory finds what was queued.
func StoreDir(dir string) Option {
	return option{"StoreDir", func(o *options) error {
		if dir == "" {
			return fmt.Errorf("empty directory")
		}
		o.storeDir = dir
		return nil
	}}
}

// Token sets the secret every client must present (Start), or the one to
// present (Connect). A token travels in clear in NATS's CONNECT line, so
// beyond loopback it needs TLS.
func Token(token string) Option {
	return option{"Token", func(o *options) error {
		if token == "" {
			return fmt.Errorf("empty token")
		}
		o.token = token
		return nil
	}}
}

// TLS serves TLS with cfg (Start: cfg needs a certificate; clients are
// verified when cfg.ClientAuth says so), or dials with it (Connect).
func TLS(cfg *tls.Config) Option {
	return option{"TLS", func(o *options) error {
		if cfg == nil {
			return fmt.Errorf("nil *tls.Config")
		}
		o.tlsConfig = cfg
		return nil
	}}
}

// Credentials authenticates with a NATS credentials file (a user JWT and its
// NKey seed, as written by nsc) or an NKey seed file (Connect).
func Credentials(file string) Option {
	return option{"Credentials", func(o *options) error {
		if file == "" {
			return fmt.Errorf("empty file name")
		}
		o.creds = file
		return nil
	}}
}

// MaxSize bounds a queue to n items (OpenQueue, OpenJoinable; 0, the
// default: unbounded). It is fixed when the queue is created.
func MaxSize(n int) Option {
	return option{"MaxSize", func(o *options) error {
		if n < 0 {
			return fmt.Errorf("negative size %d", n)
		}
		o.maxSize = n
		return nil
	}}
}

// AckWait sets how long an item (or a pool task) taken by a consumer that
// went silent stays with it before it is delivered again (OpenJoinable,
// OpenPool; default 30 s). A live consumer keeps its items: it tells the
// server so every AckWait/3.
func AckWait(d time.Duration) Option {
	return option{"AckWait", func(o *options) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("%v is below 100ms", d)
		}
		o.ackWait = d
		return nil
	}}
}

// MaxDeliver sets how many times an item (or a pool task) is delivered
// before it is dropped and reported as lost (OpenJoinable, OpenPool;
// default 3).
func MaxDeliver(n int) Option {
	return option{"MaxDeliver", func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%d is below 1", n)
		}
		o.maxDeliver = n
		return nil
	}}
}

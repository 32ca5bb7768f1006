//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
)

// Option configures Start and Serve: WithAuthKey and WithAddress apply to
// Start (Serve takes both as arguments), WithListening to Serve,
// WithMaxMessageSize to both. An option that does not apply is ignored.
type Option interface{ apply(*options) }

type options struct {
	authkey   []byte
	network   string
	addr      string
	maxMsg    int
	listening func(network, addr string)
}

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

func buildOptions(opts []Option) options {
	var o options
	for _, x := range opts {
		if x != nil {
			x.apply(&o)
		}
	}
	return o
}

// WithAuthKey sets the key a started server demands of every connection
// (default: process.AuthKey(), which child processes inherit, so that
// proxies passed to children connect without being told the key).
func WithAuthKey(key []byte) Option {
	k := append([]byte{}, key...)
	return optFunc(func(o *options) { o.authkey = k })
}

// WithAddress makes Start's server listen on network and addr ("tcp",
// "127.0.0.1:0", say) instead of a unix socket in a private directory.
func WithAddress(network, addr string) Option {
	return optFunc(func(o *options) { o.network, o.addr = network, addr })
}

// WithMaxMessageSize sets the server's limit on one message (a batch of
// requests or replies); a value larger than this cannot be stored or
// read. Default 64 MiB.
func WithMaxMessageSize(n int) Option {
	return optFunc(func(o *options) { o.maxMsg = n })
}

// WithListening makes Serve call f with the address it listens on once it
// accepts connections (useful with port 0).
func WithListening(f func(network, addr string)) Option {
	return optFunc(func(o *options) { o.listening = f })
}

// ObjectOption configures the creation of a shared object.
type ObjectOption interface{ applyObject(*objOptions) }

type objOptions struct{ name string }

type objOptFunc func(*objOptions)

func (f objOptFunc) applyObject(o *objOptions) { f(o) }

// Named gets or creates the object under name: the first call creates it,
// later ones (from any connection, in any process) get the same object,
// provided it is of the same kind (ErrWrongKind otherwise). A named
// object lives until the server stops. Creation parameters (a Value's
// initial value, a Queue's size) only apply to the call that creates it.
func Named(name string) ObjectOption {
	return objOptFunc(func(o *objOptions) { o.name = name })
}

// Manager is a connection to a manager server, and for Start the server
// process too. It is safe for concurrent use; all its proxies share its
// connection.
type Manager struct {
	cl      *client
	network string
	addr    string

	proc *process.Process // Start only
	ctl  *pipe.Conn       // Start only: its end of file stops the server
	dir  string           // Start only: the private socket directory

	once     sync.Once
	closeErr error
}

// serverArg is the argument of the server process.
type serverArg struct {
	Network string
	Addr    string
	AuthKey []byte
	MaxMsg  int
	Ctl     *pipe.Conn
}

type readyMsg struct {
	Addr string
	Err  string
}

var serverProcess = process.Register("manager.server", runServer)

// runServer is the server process: it listens, reports the address, and
// serves until its parent closes the control connection (or dies).
func runServer(ctx context.Context, a serverArg) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.Ctl.Close()
	ready := make(chan struct{})
	err := Serve(ctx, a.Network, a.Addr, a.AuthKey,
		WithMaxMessageSize(a.MaxMsg),
		WithListening(func(_, addr string) {
			close(ready)
			if err := a.Ctl.Send(readyMsg{Addr: addr}); err != nil {
				cancel()
				return
			}
			go func() {
				var x struct{}
				a.Ctl.Recv(&x) // returns at end of file: Close, or the parent died
				cancel()
			}()
		}))
	select {
	case <-ready:
		return nil // serve ran until it was told to stop
	default:
		a.Ctl.Send(readyMsg{Err: err.Error()})
		return err
	}
}

// managerCount numbers started servers for their process names.
var managerCount struct {
	sync.Mutex
	n int
}

// Start runs a manager server in a child process and connects to it, as
// Python's SyncManager.start. The server listens on a unix socket in a
// private directory (mode 0700, removed by Close) unless WithAddress says
// otherwise; every connection must know the authkey (WithAuthKey, default
// process.AuthKey()). ctx bounds the start-up only. The server process is
// a daemon child: it appears in process.ActiveChildren and dies with this
// process.
func Start(ctx context.Context, opts ...Option) (*Manager, error) {
	o := buildOptions(opts)
	key := o.authkey
	if key == nil {
		key = process.AuthKey()
	}
	network, addr := o.network, o.addr
	var dir string
	if network == "" {
		var err error
		// MkdirTemp makes the directory 0700: only this user can reach
		// the socket at all, before any authkey is checked.
		if dir, err = os.MkdirTemp("", "mpgo-manager-"); err != nil {
			return nil, fmt.Errorf("manager: start: %w", err)
		}
		network, addr = "unix", filepath.Join(dir, "sock")
	}
	if strings.HasPrefix(network, "tcp") && len(key) == 0 {
		return nil, ErrNoAuthKey
	}
	cleanup := func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	ctl, childCtl, err := pipe.Pipe()
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("manager: start: %w", err)
	}
	managerCount.Lock()
	managerCount.n++
	name := fmt.Sprintf("SyncManager-%d", managerCount.n)
	managerCount.Unlock()
	p := process.New(serverProcess, serverArg{Network: network, Addr: addr, AuthKey: key, MaxMsg: o.maxMsg, Ctl: childCtl},
		process.WithDaemon(), process.WithName(name))
	err = p.Start()
	childCtl.Close()
	if err != nil {
		ctl.Close()
		cleanup()
		return nil, fmt.Errorf("manager: start: %w", err)
	}
	fail := func(err error) (*Manager, error) {
		ctl.Close()
		p.Kill()
		p.Join(context.Background())
		cleanup()
		return nil, err
	}
	got := make(chan readyMsg, 1)
	go func() {
		var r readyMsg
		if err := ctl.Recv(&r); err != nil {
			r.Err = "the server process exited before it was ready"
		}
		got <- r
	}()
	var r readyMsg
	select {
	case r = <-got:
	case <-ctx.Done():
		return fail(fmt.Errorf("manager: start: %w", ctx.Err()))
	}
	if r.Err != "" {
		jctx, cancel := context.WithTimeout(context.Background(), time.Second)
		jerr := p.Join(jctx)
		cancel()
		if jerr != nil {
			return fail(fmt.Errorf("manager: start: %s: %w", r.Err, jerr))
		}
		return fail(fmt.Errorf("manager: start: %s", r.Err))
	}
	remember(network, r.Addr, key)
	cl, err := dial(ctx, network, r.Addr, key)
	if err != nil {
		return fail(err)
	}
	registerClient(cl)
	return &Manager{cl: cl, network: network, addr: r.Addr, proc: p, ctl: ctl, dir: dir}, nil
}

// Connect connects to a running server (Start'ed by another process, or
// Serve'd) at network and addr, as Python's BaseManager.connect. authkey
// nil means process.AuthKey(); a wrong key is an error matching ErrAuth.
func Connect(ctx context.Context, network, addr string, authkey []byte) (*Manager, error) {
	key := keyOrDefault(authkey)
	cl, err := dial(ctx, network, addr, key)
	if err != nil {
		return nil, err
	}
	remember(network, addr, key)
	registerClient(cl)
	return &Manager{cl: cl, network: network, addr: addr}, nil
}

func keyOrDefault(k []byte) []byte {
	if k == nil {
		return process.AuthKey()
	}
	return k
}

// Address returns where the server listens.
func (m *Manager) Address() (network, addr string) { return m.network, m.addr }

// serverStopTimeout bounds how long Close waits for a started server to
// exit by itself before killing it.
const serverStopTimeout = 5 * time.Second

// Close disconnects. For a Manager from Start it also stops the server:
// it closes the control connection, which makes the server close its
// listener (removing the socket) and its connections and exit; a server
// that has not exited within 5 s is killed. The socket directory is
// removed. Every proxy of this Manager then returns ErrClosed, and
// proxies elsewhere ErrDisconnected. Close returns the server's
// *process.ExitError if it had died by other means. It is idempotent.
func (m *Manager) Close() error {
	m.once.Do(func() {
		unregisterClient(m.cl)
		m.cl.Close()
		if m.proc == nil {
			return
		}
		m.ctl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
		err := m.proc.Join(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil && timedOut {
			m.proc.Kill()
			m.proc.Join(context.Background())
			err = nil
		}
		var ee *process.ExitError
		if errors.As(err, &ee) {
			m.closeErr = fmt.Errorf("manager: the server had died: %w", err)
		}
		if m.dir != "" {
			os.RemoveAll(m.dir)
		}
	})
	return m.closeErr
}

// create makes a new object (or finds the Named one) and returns its proxy.
func (m *Manager) create(ctx context.Context, k kind, opts []ObjectOption, typeName string, param func(r *request) error) (*proxy, error) {
	if m == nil {
		return nil, fmt.Errorf("manager: nil Manager")
	}
	var oo objOptions
	for _, o := range opts {
		if o != nil {
			o.applyObject(&oo)
		}
	}
	cl := m.cl
	r := cl.request(opCreate, 0, 3)
	r.uint(uint64(k))
	if oo.name == "" {
		r.nil()
	} else {
		r.str(oo.name)
	}
	switch {
	case param != nil:
		if err := param(r); err != nil {
			r.free()
			return nil, err
		}
	case typeName != "":
		r.str(typeName)
	default:
		r.nil()
	}
	rep, err := cl.roundTrip(ctx, r, plain)
	if err != nil {
		return nil, fmt.Errorf("manager: new %s: %w", k, err)
	}
	id, _, err := msgp.ReadUint(rep.payload)
	if err != nil {
		cl.settle(rep.grants)
		return nil, fmt.Errorf("manager: new %s: bad reply", k)
	}
	p := newBound(cl, ref{server: cl.serverID, network: m.network, addr: m.addr, id: id, kind: k, typeName: typeName})
	cl.settle(rep.grants)
	return p, nil
}

// stats asks the server for its object, connection and token counts.
func (m *Manager) stats(ctx context.Context) (objects, conns, tokens int, err error) {
	r := m.cl.request(opStats, 0, 0)
	rep, err := m.cl.roundTrip(ctx, r, plain)
	if err != nil {
		return 0, 0, 0, err
	}
	var v []int
	if err := m.cl.decodeValue(rep.payload, &v); err != nil || len(v) != 3 {
		return 0, 0, 0, fmt.Errorf("manager: bad stats reply")
	}
	return v[0], v[1], v[2], nil
}

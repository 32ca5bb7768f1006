//go:build linux

package wire

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The standard library's descriptor-owning types travel as handles too. Each
// is sent as a duplicate (so the sender's copy keeps its own blocking mode
// and can be closed at once) and rebuilt on the other side around the
// received descriptor.
func init() {
	RegisterHandle(ExtFile, func(f *os.File, fds *Files) ([]byte, error) {
		return dupInto(f, fds, f.Name())
	}, func(f *os.File, state []byte, fds *Files) error {
		fd, err := takeIndex(state, fds)
		if err != nil {
			return err
		}
		*f = *NewFile(fd, string(state[1:]))
		return nil
	})
	registerConn[net.TCPConn](ExtTCPConn)
	registerConn[net.UnixConn](ExtUnixConn)
	registerListener[net.TCPListener](ExtTCPListener)
	registerListener[net.UnixListener](ExtUnixListener)
}

// dupInto duplicates the descriptor behind c into fds. The state is one byte
// of index followed by extra.
func dupInto(c syscall.Conn, fds *Files, extra string) ([]byte, error) {
	fd, err := rawFD(c)
	if err != nil {
		return nil, err
	}
	if fds.Len() >= 250 {
		return nil, fmt.Errorf("wire: too many handles in one value (SCM_RIGHTS carries at most 253)")
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("wire: dup: %w", err)
	}
	i := fds.AddOwned(d)
	return append([]byte{byte(i)}, extra...), nil
}

func takeIndex(state []byte, fds *Files) (int, error) {
	if len(state) < 1 {
		return -1, fmt.Errorf("wire: empty handle state")
	}
	return fds.Take(int(state[0]))
}

// registerConn registers a net.Conn implementation. The pointer types of the
// standard library are what net.FileConn returns, so the rebuilt value is
// copied into place.
func registerConn[T any, PT interface {
	*T
	syscall.Conn
}](id int8) {
	RegisterHandle(id, func(c *T, fds *Files) ([]byte, error) {
		return dupInto(PT(c), fds, "")
	}, func(c *T, state []byte, fds *Files) error {
		fd, err := takeIndex(state, fds)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), "conn")
		nc, err := net.FileConn(f) // dups; f is ours to close
		f.Close()
		if err != nil {
			return fmt.Errorf("wire: rebuild connection: %w", err)
		}
		got, ok := nc.(PT)
		if !ok {
			nc.Close()
			return fmt.Errorf("wire: received %T, want %T", nc, c)
		}
		*c = *got
		return nil
	})
}

func registerListener[T any, PT interface {
	*T
	syscall.Conn
}](id int8) {
	RegisterHandle(id, func(l *T, fds *Files) ([]byte, error) {
		return dupInto(PT(l), fds, "")
	}, func(l *T, state []byte, fds *Files) error {
		fd, err := takeIndex(state, fds)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), "listener")
		nl, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("wire: rebuild listener: %w", err)
		}
		got, ok := nl.(PT)
		if !ok {
			nl.Close()
			return fmt.Errorf("wire: received %T, want %T", nl, l)
		}
		*l = *got
		return nil
	})
}

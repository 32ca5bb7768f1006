//go:build linux

package manager

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"sync"

	"github.com/mpgo/multiprocessing/process"
	"github.com/vmihailenco/msgpack/v5"
)

// A proxy never carries an authkey: whoever reads a proxy (a peer that
// sent it on a pipe, anyone with the key of the manager it was stored in)
// must not learn the key of the manager it points to, nor make this
// process present its key to an address of their choosing. So a proxy
// that arrives from elsewhere connects only to a manager this process
// knows: one it started, connected to, serves, or was told about with
// Allow, each with its key. Children inherit what their parent knows (see
// envKnown), and a proxy of a manager whose key is process.AuthKey()
// carries a mark that only processes of this family can make (see
// familyMark), so proxies passed between the processes of a program work
// as before.

// known is this process's table of managers, by address.
var known struct {
	sync.Mutex
	keys map[knownAddr][]byte
	env  bool // the table inherited from the parent was read
}

type knownAddr struct{ network, addr string }

// envKnown is the environment variable through which children inherit the
// table: a msgpack list of (network, address, key) sealed with AES-GCM
// under a key derived from process.AuthKey(), which children receive in
// their private bootstrap and nobody else has. Reading the environment
// (/proc/PID/environ) therefore reveals nothing.
const envKnown = "MPGO_MANAGERS"

// Allow lets proxies that this process receives from elsewhere (a pipe, a
// queue, a value stored in another manager) connect to the manager at
// network and addr with authkey (nil: process.AuthKey()). Managers this
// process started (Start), connected to (Connect) or serves (Serve) are
// allowed already, as are those its parent knew when it started this
// process. A proxy of any other manager is refused at its first call with
// an error matching ErrUnknownManager, without connecting: otherwise a
// forged proxy could make this process present its key to an address of
// the sender's choosing. Child processes started after Allow inherit it.
func Allow(network, addr string, authkey []byte) {
	remember(network, addr, keyOrDefault(authkey))
}

func remember(network, addr string, key []byte) {
	known.Lock()
	defer known.Unlock()
	loadKnownLocked()
	known.keys[knownAddr{network, addr}] = append([]byte{}, key...)
	exportKnownLocked()
}

// knownKey returns the key of the manager at network and addr, if this
// process knows it.
func knownKey(network, addr string) ([]byte, bool) {
	known.Lock()
	defer known.Unlock()
	loadKnownLocked()
	k, ok := known.keys[knownAddr{network, addr}]
	return k, ok
}

type knownEntry struct {
	Network string
	Addr    string
	Key     []byte
}

func envCipher() (cipher.AEAD, error) {
	k := sha256.Sum256(append([]byte("mpgo manager table\x00"), process.AuthKey()...))
	b, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// loadKnownLocked reads the table inherited from the parent, once. A
// variable that does not open under this process's key (set by hand, or
// inherited from a process of another family) is ignored.
func loadKnownLocked() {
	if known.keys == nil {
		known.keys = make(map[knownAddr][]byte)
	}
	if known.env {
		return
	}
	known.env = true
	v := os.Getenv(envKnown)
	if v == "" {
		return
	}
	sealed, err := base64.StdEncoding.DecodeString(v)
	aead, cerr := envCipher()
	if err != nil || cerr != nil || len(sealed) < aead.NonceSize() {
		return
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return
	}
	var list []knownEntry
	if msgpack.Unmarshal(plain, &list) != nil {
		return
	}
	for _, e := range list {
		known.keys[knownAddr{e.Network, e.Addr}] = e.Key
	}
}

// exportKnownLocked publishes the table for children started from now on.
func exportKnownLocked() {
	list := make([]knownEntry, 0, len(known.keys))
	for a, k := range known.keys {
		list = append(list, knownEntry{Network: a.network, Addr: a.addr, Key: k})
	}
	plain, err := msgpack.Marshal(list)
	aead, cerr := envCipher()
	if err != nil || cerr != nil {
		return
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	os.Setenv(envKnown, base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, nil)))
}

// familyMark proves that the proxy's sender holds process.AuthKey() and
// that the manager it points to demands that key: an HMAC of the manager's
// address and identity under the key. A proxy of such a manager (the
// default key) can then travel between processes of one family by any
// path, a queue from a child to its parent say, and its receiver connects
// with its own process.AuthKey(), as Python's proxies do; a proxy forged
// by anyone without the key carries no valid mark and is refused, and the
// mark reveals nothing about the key.
func familyMark(r *ref) []byte {
	m := hmac.New(sha256.New, process.AuthKey())
	m.Write([]byte("mpgo manager address\x00"))
	m.Write([]byte(r.network))
	m.Write([]byte{0})
	m.Write([]byte(r.addr))
	m.Write([]byte{0})
	m.Write(r.server[:])
	return m.Sum(nil)
}

// unknownManager is the error of a proxy whose manager this process does
// not know.
func unknownManager(r *ref) error {
	return fmt.Errorf("%w: a %s proxy points to %s %s: call manager.Allow(%q, %q, key) first if you trust it (a proxy carries no authkey)",
		ErrUnknownManager, r.kind, r.network, r.addr, r.network, r.addr)
}

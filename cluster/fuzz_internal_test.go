//go:build linux

package cluster

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// The reply subject of a delivered item comes from the server: a malformed
// one is an error, never a panic.
func FuzzMeta(f *testing.F) {
	f.Add("$JS.ACK.MPQ_q.mpq.1.2.3.1796410611309843805.0")
	f.Add("$JS.ACK.dom.hash.MPQ_q.mpq.2.7.9.1796410611309843805.0.rand")
	f.Add("$JS.ACK...")
	f.Add("")
	f.Fuzz(func(t *testing.T, reply string) {
		m := &qmsg{m: &nats.Msg{Reply: reply}}
		_, _, _ = m.meta()
	})
}

// Keys and values of a bucket may be written by any client: what does not
// decode is an error, never a panic.
func FuzzDictDecode(f *testing.F) {
	k := &Dict[string, []int]{name: "fuzz"}
	f.Add("oWE", []byte{0x91, 0x01})
	f.Add("!!", []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		_, _ = k.decodeKey(key)
		_, _ = k.decode(value)
	})
}

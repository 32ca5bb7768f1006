//go:build linux

package pipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// rawConn returns a Conn reading an OS pipe whose write end the caller
// fills with arbitrary bytes.
func rawConn(t testing.TB) (*Conn, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return newConn(r, true, false), w
}

func frame(b []byte) []byte {
	h := make([]byte, largeHeaderLen)
	return append(h[:putHeader(h, len(b))], b...)
}

// FuzzRecv feeds arbitrary bytes to a Conn. Whatever they are, Recv and
// RecvBytes return messages or errors: no panic, no hang, no allocation
// beyond the size limit.
func FuzzRecv(f *testing.F) {
	f.Add(frame([]byte("hello")))
	f.Add(frame(nil))
	f.Add(append(frame([]byte{0x92, 0x01, 0xa1, 'x'}), frame([]byte{0xc0})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xfb})                        // negative length
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 1})                     // huge, truncated
	f.Add([]byte{0, 0, 0, 5, 'a'})                               // truncated payload
	f.Add([]byte{0, 0})                                          // truncated header
	f.Add(frame([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}))           // msgpack array claiming 4G items
	f.Add(frame([]byte{0xc7, 0x05, 106, 1, 2, 3, 4, 5}))         // a handle ext without descriptors
	f.Add(frame([]byte{0xc1, 'H', 2, 0xc7, 0x03, 105, 1, 0, 3})) // marked: 2 descriptors, none sent
	f.Fuzz(func(t *testing.T, data []byte) {
		// Through an OS pipe, and through a unix socket (recvmsg, where
		// marked messages claim descriptors that never came).
		for _, socket := range []bool{false, true} {
			recvAll(t, data, socket)
		}
	})
}

// recvAll feeds data to a Conn over an OS pipe or a unix socket and
// receives until the stream ends: no panic, no hang, no more messages than
// bytes.
func recvAll(t *testing.T, data []byte, socket bool) {
	var c *Conn
	var w *os.File
	if socket {
		a, b, err := Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c, w = a, b.s.(*os.File)
	} else {
		c, w = rawConn(t)
	}
	defer c.Close()
	c.SetMaxMessageSize(1 << 16)
	go func() {
		w.Write(data)
		w.Close()
	}()
	for i := 0; ; i++ {
		var v any
		var err error
		if i%2 == 0 {
			err = c.Recv(&v)
		} else {
			_, err = c.RecvBytes()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrBadFrame) {
			return
		}
		if i > len(data) {
			t.Fatalf("more messages (%d) than bytes (%d)", i, len(data))
		}
	}
}

// FuzzHandshake plays arbitrary bytes as the peer of both handshake roles:
// the result is an error (never a panic or hang) unless the bytes happen to
// be a correct handshake, which random input cannot produce.
func FuzzHandshake(f *testing.F) {
	f.Add(frame([]byte("#CHALLENGE#{sha256}0123456789012345678901234567890123456789")))
	f.Add(frame([]byte("#CHALLENGE#01234567890123456789")))
	f.Add(frame([]byte("#CHALLENGE#{nope}0123456789012345678901234567890123456789")))
	f.Add(frame([]byte("#CHALLENGE#{sha256")))
	f.Add(frame([]byte("#CHALLENGE#short")))
	f.Add(frame(bytes.Repeat([]byte{'x'}, 300)))
	f.Add(append(frame([]byte("{sha256}0123456789012345678901234567890")), frame([]byte("#WELCOME#"))...))
	f.Add(frame(make([]byte, 16)))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, server := range []bool{true, false} {
			a, b, err := Pipe()
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				b.s.Write(data)
				// Drain what the handshake writes, then hang up.
				io.Copy(io.Discard, io.LimitReader(b.s, 4096))
			}()
			done := make(chan error, 1)
			go func() {
				if server {
					err = deliverChallenge(a, []byte("key"))
					if err == nil {
						err = answerChallenge(a, []byte("key"))
					}
				} else {
					err = answerChallenge(a, []byte("key"))
				}
				done <- err
			}()
			b.s.(*os.File).Close()
			err = <-done
			a.Close()
			if err == nil {
				t.Fatalf("handshake accepted %q", data)
			}
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("handshake error %v does not match ErrAuth", err)
			}
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, hlen, need, err := parseHeader(b)
		if err != nil || need > 0 {
			return
		}
		if n < 0 || (hlen != headerLen && hlen != largeHeaderLen) || hlen > len(b) {
			t.Fatalf("parseHeader(%x) = %d, %d", b, n, hlen)
		}
		if hlen == largeHeaderLen {
			// The escape form is legal at any size (Python's reader takes
			// it), so it need not be what putHeader would write.
			if uint64(n) != binary.BigEndian.Uint64(b[4:]) {
				t.Fatalf("parseHeader(%x) = %d", b, n)
			}
			return
		}
		var h [largeHeaderLen]byte
		if m := putHeader(h[:], int(n)); !bytes.Equal(h[:m], b[:m]) {
			t.Fatalf("round trip of %d: %x != %x", n, h[:m], b[:m])
		}
	})
}

//go:build linux

package pipe

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
)

// The authkey handshake of Python's multiprocessing.connection, both forms:
//
//   - 3.12 and later: the challenge is "#CHALLENGE#{sha256}" plus 40 random
//     bytes; the answer is "{name}" plus HMAC-name(key, everything after
//     "#CHALLENGE#"), for any allowed digest name.
//   - 3.11 and earlier: the challenge is "#CHALLENGE#" plus 20 random bytes;
//     the answer is the raw 16-byte HMAC-MD5 of those bytes.
//
// The verdict is "#WELCOME#" or "#FAILURE#". The side that accepts delivers
// its challenge first and then answers the peer's; the side that dials does
// the reverse, so each side proves it knows the key.
const (
	challengePrefix = "#CHALLENGE#"
	welcome         = "#WELCOME#"
	failure         = "#FAILURE#"
	legacyLen       = 20 // 3.11 challenge payload
	modernLen       = 40
	authMaxMsg      = 256 // both sides read with recv_bytes(256)
)

var digests = map[string]func() hash.Hash{
	"md5":      md5.New,
	"sha256":   sha256.New,
	"sha384":   sha512.New384,
	"sha3_256": func() hash.Hash { return sha3.New256() },
	"sha3_384": func() hash.Hash { return sha3.New384() },
}

func mac(name string, key, msg []byte) []byte {
	m := hmac.New(digests[name], key)
	m.Write(msg)
	return m.Sum(nil)
}

// splitDigest parses a "{name}payload" message into the digest name and the
// payload. ok is false when there is no such prefix or the name is unknown.
func splitDigest(b []byte) (name string, payload []byte, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return "", nil, false
	}
	end := bytes.IndexByte(b[:min(len(b), 20)], '}')
	if end < 0 {
		return "", nil, false
	}
	name = string(b[1:end])
	if _, known := digests[name]; !known {
		return "", nil, false
	}
	return name, b[end+1:], true
}

// recvAuth reads one handshake message of at most authMaxMsg bytes.
func recvAuth(c *Conn) ([]byte, error) {
	var buf [authMaxMsg]byte
	n, err := c.RecvBytesInto(buf[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return bytes.Clone(buf[:n]), nil
}

// deliverChallenge sends a modern challenge and checks the answer, which may
// use any allowed digest or be a legacy raw HMAC-MD5.
func deliverChallenge(c *Conn, key []byte) error {
	msg := make([]byte, 0, len("{sha256}")+modernLen)
	msg = append(msg, "{sha256}"...)
	msg = append(msg, make([]byte, modernLen)...)
	rand.Read(msg[len("{sha256}"):])
	if err := c.SendBytes(append([]byte(challengePrefix), msg...)); err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	resp, err := recvAuth(c)
	if err != nil {
		return err
	}
	var want []byte
	var got []byte
	if len(resp) == md5.Size {
		want, got = mac("md5", key, msg), resp
	} else if name, payload, ok := splitDigest(resp); ok {
		want, got = mac(name, key, msg), payload
	}
	if want == nil || !hmac.Equal(want, got) {
		c.SendBytes([]byte(failure))
		return fmt.Errorf("%w: digest received was wrong", ErrAuth)
	}
	if err := c.SendBytes([]byte(welcome)); err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return nil
}

// answerChallenge answers the peer's challenge and reads its verdict.
func answerChallenge(c *Conn, key []byte) error {
	m, err := recvAuth(c)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(m, []byte(challengePrefix)) {
		return fmt.Errorf("%w: protocol error: expected a challenge, got %q", ErrAuth, truncate(m))
	}
	m = m[len(challengePrefix):]
	if len(m) < legacyLen {
		return fmt.Errorf("%w: challenge too short (%d bytes)", ErrAuth, len(m))
	}
	var resp []byte
	if len(m) == legacyLen {
		resp = mac("md5", key, m)
	} else {
		name, _, ok := splitDigest(m)
		if !ok {
			return fmt.Errorf("%w: unsupported digest in challenge %q", ErrAuth, truncate(m))
		}
		resp = append([]byte("{"+name+"}"), mac(name, key, m)...)
	}
	if err := c.SendBytes(resp); err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	v, err := recvAuth(c)
	if err != nil {
		return err
	}
	if string(v) != welcome {
		return fmt.Errorf("%w: digest sent was rejected", ErrAuth)
	}
	return nil
}

func truncate(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

//go:build linux

package pipe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pyHMAC computes HMAC-name(key, msg) with Python's hmac module, the
// implementation Python's multiprocessing.connection uses.
func pyHMAC(t *testing.T, name string, key, msg []byte) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	out, err := exec.Command(py, "-c",
		"import hmac,sys; print(hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]).hexdigest())",
		hex.EncodeToString(key), hex.EncodeToString(msg), name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := hex.DecodeString(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	return b
}

var allDigests = []string{"md5", "sha256", "sha384", "sha3_256", "sha3_384"}

// A 3.12+ peer may name any allowed digest in its challenge: the answer is
// "{name}" and the HMAC over the whole message, prefix included.
func TestAnswerChallengeDigests(t *testing.T) {
	key := []byte("the key")
	for _, name := range allDigests {
		t.Run(name, func(t *testing.T) {
			a, b, err := Pipe()
			require.NoError(t, err)
			defer a.Close()
			defer b.Close()
			msg := append([]byte("{"+name+"}"), bytes.Repeat([]byte{7}, 40)...)
			got := make(chan []byte, 1)
			go func() {
				b.SendBytes(append([]byte(challengePrefix), msg...))
				resp, _ := b.RecvBytes()
				got <- resp
				b.SendBytes([]byte(welcome))
			}()
			require.NoError(t, answerChallenge(a, key))
			want := append([]byte("{"+name+"}"), pyHMAC(t, name, key, msg)...)
			assert.Equal(t, want, <-got)
		})
	}
	t.Run("legacy", func(t *testing.T) {
		a, b, err := Pipe()
		require.NoError(t, err)
		defer a.Close()
		defer b.Close()
		msg := bytes.Repeat([]byte{9}, legacyLen)
		got := make(chan []byte, 1)
		go func() {
			b.SendBytes(append([]byte(challengePrefix), msg...))
			resp, _ := b.RecvBytes()
			got <- resp
			b.SendBytes([]byte(welcome))
		}()
		require.NoError(t, answerChallenge(a, key))
		assert.Equal(t, pyHMAC(t, "md5", key, msg), <-got, "3.11: raw HMAC-MD5, no prefix")
	})
}

// Our challenge may be answered with any allowed digest, or (a 3.11 peer)
// a raw HMAC-MD5; anything else, a truncated or padded MAC included, is
// refused with #FAILURE#.
func TestDeliverChallengeResponses(t *testing.T) {
	key := []byte("k")
	type answer func(msg []byte) []byte
	cases := map[string]struct {
		answer answer
		ok     bool
	}{
		"legacy md5": {func(m []byte) []byte { return pyHMAC(t, "md5", key, m) }, true},
		"wrong key":  {func(m []byte) []byte { return pyHMAC(t, "md5", []byte("x"), m) }, false},
		"short":      {func(m []byte) []byte { return append([]byte("{sha256}"), pyHMAC(t, "sha256", key, m)[:31]...) }, false},
		"long":       {func(m []byte) []byte { return append(append([]byte("{sha256}"), pyHMAC(t, "sha256", key, m)...), 0) }, false},
		"unknown":    {func(m []byte) []byte { return append([]byte("{sha1}"), pyHMAC(t, "sha1", key, m)...) }, false},
		"empty":      {func(m []byte) []byte { return nil }, false},
		"mislabeled": {func(m []byte) []byte { return append([]byte("{sha384}"), pyHMAC(t, "sha3_384", key, m)...) }, false},
	}
	for _, name := range allDigests {
		cases["{"+name+"}"] = struct {
			answer answer
			ok     bool
		}{func(m []byte) []byte { return append([]byte("{"+name+"}"), pyHMAC(t, name, key, m)...) }, true}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b, err := Pipe()
			require.NoError(t, err)
			defer a.Close()
			defer b.Close()
			verdict := make(chan []byte, 1)
			go func() {
				ch, _ := b.RecvBytes()
				b.SendBytes(tc.answer(bytes.TrimPrefix(ch, []byte(challengePrefix))))
				v, _ := b.RecvBytes()
				verdict <- v
			}()
			err = deliverChallenge(a, key)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, welcome, string(<-verdict))
			} else {
				assert.True(t, errors.Is(err, ErrAuth), "%v", err)
				assert.Equal(t, failure, string(<-verdict))
			}
		})
	}
}

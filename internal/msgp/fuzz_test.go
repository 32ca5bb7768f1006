//go:build linux

package msgp

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzLen holds the scanner and the readers to the msgpack decoder on
// arbitrary bytes: they never panic, never claim a byte that is not there
// or look past their value, agree with the decoder on where a value ends,
// and read the values the decoder reads.
func FuzzLen(f *testing.F) {
	for _, v := range corpus() {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 512 {
			f.Add(b)
		}
	}
	for _, b := range [][]byte{nil, {0xc1}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0x93, 0x91, 0x91, 0x01},
		{0xc7, 0x00}, {0xdf, 0x00, 0x00, 0x00, 0x01, 0xc0}, nested(MaxDepth+1, 0x90), nested(MaxDepth+1, 0x01)} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b):len(b)]
		exts, maps := 0, 0
		n, err := Walk(b, &Visitor{
			Ext: func(_ int8, data []byte) error { exts++; return nil },
			Map: func(int) error { maps++; return nil },
		})
		if m, err2 := Len(b); m != n || (err == nil) != (err2 == nil) {
			t.Fatalf("Walk says %d, %v; Len %d, %v", n, err, m, err2)
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("failed with length %d", n)
			}
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrDepth) {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if n <= 0 || n > len(b) {
				t.Fatalf("claimed %d of %d bytes", n, len(b))
			}
			if m, err := Len(b[:n]); err != nil || m != n {
				t.Fatalf("the value alone scans as %d, %v", m, err)
			}
			if m, err := Len(b[:n-1]); err == nil {
				t.Fatalf("the value without its last byte scans as %d", m)
			}
		}

		// The decoder's Skip is the reference for where a value ends.
		r := bytes.NewReader(b)
		dec := msgpack.NewDecoder(r)
		skipErr := dec.Skip()
		switch {
		case err == nil && skipErr != nil:
			t.Fatalf("Len accepts %d bytes, msgpack does not: %v", n, skipErr)
		case err == nil && len(b)-r.Len() != n:
			t.Fatalf("Len says %d bytes, msgpack %d", n, len(b)-r.Len())
		case err != nil && skipErr == nil && !errors.Is(err, ErrDepth):
			t.Fatalf("msgpack skips %d bytes, Len refuses: %v", len(b)-r.Len(), err)
		}
		if err == nil && exts+maps > n {
			t.Fatalf("%d hooks called for %d bytes", exts+maps, n)
		}

		// Readers: within bounds, taking the value Len measured (a scalar
		// one reads is one Len accepts), and agreeing with the decoder.
		agree(t, b, "ReadInt", n, ReadInt, (*msgpack.Decoder).DecodeInt64, eq)
		agree(t, b, "ReadUint", n, ReadUint, (*msgpack.Decoder).DecodeUint64, eq)
		agree(t, b, "ReadFloat", n, ReadFloat, (*msgpack.Decoder).DecodeFloat64, func(x, y float64) bool {
			return math.Float64bits(x) == math.Float64bits(y) || math.IsNaN(x) && math.IsNaN(y)
		})
		agree(t, b, "ReadBool", n, ReadBool, (*msgpack.Decoder).DecodeBool, eq)
		agree(t, b, "ReadString", n, ReadString, (*msgpack.Decoder).DecodeString, eq)
		agree(t, b, "ReadBytes", n, ReadBytes, (*msgpack.Decoder).DecodeBytes, func(x, y []byte) bool {
			return bytes.Equal(x, y) && (x == nil) == (y == nil)
		})
		agree(t, b, "ReadArrayHeader", -1, ReadArrayHeader, (*msgpack.Decoder).DecodeArrayLen, eq)
		agree(t, b, "ReadMapHeader", -1, ReadMapHeader, (*msgpack.Decoder).DecodeMapLen, eq)
	})
}

func eq[T comparable](x, y T) bool { return x == y }

// agree checks a reader on b: a failure takes no bytes; a success takes
// bytes that are there, exactly the n bytes Len measured when n >= 0 (0
// when Len refused b; a header reader passes -1: it reads the start of its
// value only), and reads what the msgpack decoder reads.
func agree[T any](t *testing.T, b []byte, name string, n int, read func([]byte) (T, int, error),
	decode func(*msgpack.Decoder) (T, error), same func(T, T) bool) {
	t.Helper()
	v, m, err := read(b)
	if err != nil {
		if m != 0 {
			t.Fatalf("%s failed with length %d", name, m)
		}
		return
	}
	if m <= 0 || m > len(b) || n >= 0 && m != n {
		t.Fatalf("%s took %d of %d bytes (the value has %d)", name, m, len(b), n)
	}
	if w, derr := decode(msgpack.NewDecoder(bytes.NewReader(b))); derr != nil || !same(v, w) {
		t.Fatalf("%s read %v, msgpack %v, %v", name, v, w, derr)
	}
}

// FuzzAppendRead appends values of every scalar type, checks the bytes
// against the msgpack encoder's, and reads them back.
func FuzzAppendRead(f *testing.F) {
	f.Add(int64(0), uint64(0), 0.0, "", []byte(nil), uint32(0))
	f.Add(int64(-33), uint64(256), -1.5, "x", []byte{}, uint32(16))
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), math.Inf(1), string(make([]byte, 300)), make([]byte, 256), uint32(1<<16))
	f.Add(int64(math.MaxInt32)+1, uint64(math.MaxUint32), math.NaN(), "héllo", []byte("x"), uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, i int64, u uint64, fl float64, s string, bin []byte, count uint32) {
		var want bytes.Buffer
		enc := msgpack.NewEncoder(&want)
		enc.UseCompactInts(true)
		var b []byte
		b = AppendInt(b, i)
		enc.EncodeInt(i)
		b = AppendUint(b, u)
		enc.EncodeUint(u)
		b = AppendFloat64(b, fl)
		enc.EncodeFloat64(fl)
		b = AppendFloat32(b, float32(fl))
		enc.EncodeFloat32(float32(fl))
		b = AppendString(b, s)
		enc.EncodeString(s)
		b = AppendBin(b, bin)
		enc.EncodeBytes(bin)
		b = AppendBool(b, i&1 == 1)
		enc.EncodeBool(i&1 == 1)
		b = AppendNil(b)
		enc.EncodeNil()
		b = AppendArrayHeader(b, int(count))
		enc.EncodeArrayLen(int(count))
		b = AppendMapHeader(b, int(count))
		enc.EncodeMapLen(int(count))
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("appended %x, msgpack wrote %x", b, want.Bytes())
		}

		p := 0
		next := func(m int, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("at %d: %v", p, err)
			}
			if l, lerr := Len(b[p:]); lerr == nil && l != m {
				t.Fatalf("at %d: read %d bytes, Len says %d", p, m, l)
			}
			p += m
		}
		gi, m, err := ReadInt(b[p:])
		next(m, err)
		gu, m, err := ReadUint(b[p:])
		next(m, err)
		gf, m, err := ReadFloat(b[p:])
		next(m, err)
		gf32, m, err := ReadFloat(b[p:])
		next(m, err)
		gs, m, err := ReadString(b[p:])
		next(m, err)
		gbin, m, err := ReadBytes(b[p:])
		next(m, err)
		gbool, m, err := ReadBool(b[p:])
		next(m, err)
		gnil, m, err := ReadBytes(b[p:])
		next(m, err)
		if gi != i || gu != u || gs != s || !bytes.Equal(gbin, bin) || (gbin == nil) != (bin == nil) ||
			gbool != (i&1 == 1) || gnil != nil ||
			math.Float64bits(gf) != math.Float64bits(fl) && !math.IsNaN(fl) ||
			float32(gf32) != float32(fl) && !math.IsNaN(fl) {
			t.Fatalf("read back %d %d %v %v %q %x %v %x", gi, gu, gf, gf32, gs, gbin, gbool, gnil)
		}
		// A header reads back as the count it was written with, whatever
		// follows it.
		for _, h := range []struct {
			b    []byte
			read func([]byte) (int, int, error)
		}{{AppendArrayHeader(nil, int(count)), ReadArrayHeader}, {AppendMapHeader(nil, int(count)), ReadMapHeader}} {
			if c, m, err := h.read(h.b); err != nil || c != int(count) || m != len(h.b) {
				t.Fatalf("header of %d read as %d, %d, %v", count, c, m, err)
			}
		}
	})
}

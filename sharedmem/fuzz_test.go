//go:build linux

package sharedmem

import (
	"testing"

	"github.com/mpgo/multiprocessing/internal/wire"
	"golang.org/x/sys/unix"
)

type fuzzValue struct {
	M *Memory
	A *Array[int64]
	V *Value[float64]
}

func (v *fuzzValue) close() {
	if v.M != nil {
		v.M.Close()
	}
	if v.A != nil {
		v.A.Close()
	}
	if v.V != nil {
		v.V.Close()
	}
}

// FuzzDecode feeds arbitrary bytes, beside a table of real descriptors (a
// block, an array's memory and lock, a value's), to the handle decoders: a
// bad state is an error, never a panic, a mapping of the wrong size or a
// leaked descriptor.
func FuzzDecode(f *testing.F) {
	m, err := New(4096)
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	a, err := NewArray[int64](10)
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	v, err := NewValue(1.5)
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	data, files, err := wire.Marshal(fuzzValue{m, a, v})
	if err != nil {
		f.Fatal(err)
	}
	fds := append([]int(nil), files.FDs()...)
	defer files.Close()
	f.Add(data)
	for _, x := range []any{fuzzValue{M: m}, fuzzValue{A: a}, fuzzValue{V: v}} {
		d, fs, err := wire.Marshal(x)
		if err != nil {
			f.Fatal(err)
		}
		fs.Close()
		f.Add(d)
	}
	f.Add([]byte{0x81, 0xa1, 'M', 0xd7, byte(wire.ExtMemory), stateVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		dups := make([]int, len(fds))
		for i, fd := range fds {
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			dups[i] = d
		}
		recv := wire.Received(dups)
		defer recv.Close()
		var got fuzzValue
		if err := wire.Unmarshal(data, recv, &got); err != nil {
			return
		}
		defer got.close()
		// Whatever decoded is usable across its whole length.
		if got.M != nil {
			b := got.M.Bytes()
			b[len(b)-1] = b[0]
		}
		if got.A != nil {
			s := got.A.Slice()
			s[len(s)-1]++
		}
		if got.V != nil {
			got.V.Add(1)
		}
	})
}

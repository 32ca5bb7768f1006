//go:build linux

package pool

import (
	"encoding/binary"
	"testing"

	"github.com/mpgo/multiprocessing/pool/driver"
)

// Decoders of peer input: a worker decodes what the parent sends, the
// parent decodes what a worker sends and what a dead worker left in its
// segment. None of them may panic or hang on any input.

func seedTasks() [][]byte {
	var es encState
	b := appendSpanHeader(nil, 7, 3, 2, "test.square", false)
	h := len(b)
	b, _ = newCodec[int]().enc(&es, b, ptr(5))
	b, _ = newCodec[int]().enc(&es, b, ptr(-700))
	finishSpan(b, h)
	b = appendStop(b, stopMsg{job: 7, threshold: 4})
	g := appendSpanHeader(nil, 8, 0, 1, "x", true)
	h = len(g)
	g, _ = newCodec[any]().enc(&es, g, ptr[any](map[string]any{"a": []int{1}}))
	finishSpan(g, h)
	return [][]byte{b, g, {recStop}, {recSpan, 0, 0}, {recSpanStopOn, 0}, {9}, nil}
}

func ptr[T any](v T) *T { return &v }

func FuzzParseTasks(f *testing.F) {
	for _, s := range seedTasks() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseTasks(b, func(s spanMsg) {
			if s.count > 1000 {
				s.count = 1000
			}
			// What a worker's task entry does with the arguments.
			var d decState
			for _, dec := range []func(*decState) error{
				func(d *decState) error { var v int; return newCodec[int]().dec(d, &v) },
				func(d *decState) error { var v string; return newCodec[string]().dec(d, &v) },
				func(d *decState) error { var v any; return newCodec[any]().dec(d, &v) },
				func(d *decState) error {
					var v struct{ A []float64 }
					return newCodec[struct{ A []float64 }]().dec(d, &v)
				},
			} {
				d.reset(s.args)
				for range s.count {
					if dec(&d) != nil {
						break
					}
				}
			}
		}, func(stopMsg) {})
	})
}

func seedResults() [][]byte {
	var es encState
	rec := func(b []byte, v int) []byte {
		b = append(b, statusOK)
		b, _ = newCodec[int]().enc(&es, b, &v)
		return b
	}
	var payload []byte
	payload = rec(payload, 1)
	payload = appendErrRecord(payload, kindPanic, "panic: x", "stack")
	payload = append(payload, statusSkipped)
	payload = rec(payload, 1<<40)
	run := make([]byte, runHeaderLen)
	putRunHeader(run, 1, 0, 4, len(payload))
	run = append(run, payload...)
	two := append([]byte(nil), run...)
	hdr := make([]byte, runHeaderLen)
	putRunHeader(hdr, 1, 18, 3, 3)
	two = append(append(two, hdr...), statusSkipped, statusSkipped, statusSkipped)
	bad := append([]byte(nil), run...)
	binary.BigEndian.PutUint32(bad[12:], 1000)
	return [][]byte{run, two, bad, run[:10], nil}
}

func FuzzResults(f *testing.F) {
	for _, s := range seedResults() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, recovering bool) {
		// Straight into collectors of several result types.
		parseRuns(b, func(r run) error {
			k := min(r.count, 100)
			newCollector[int](nil, k, modeOrdered, &callOptions{}, nil).deliver(r.payload, 0, 0, k)
			newCollector[int](nil, k+3, modeOrdered, &callOptions{}, nil).deliver(r.payload, 3, min(r.count, 3), k)
			newCollector[any](nil, k, modeUnordered, &callOptions{}, nil).deliver(r.payload, 0, 0, k)
			newCollector[[]string](nil, k, modeOrdered, &callOptions{}, nil).deliver(r.payload, 0, 0, k)
			return nil
		})
		// Through the parent's matching against what the worker holds.
		p := &Pool{perItem: map[string]float64{}}
		c := newCollector[int](p, 50, modeOrdered, &callOptions{}, nil)
		j := &job{id: 1, n: 50, limit: 50, sink: c}
		c.j = j
		w := &worker{p: p, pending: 50, inflight: []*span{
			{job: j, start: 0, count: 20}, {job: j, start: 20, count: 30},
		}}
		p.deliver(w, b, recovering)
		done := 0
		for _, sp := range w.inflight {
			if sp.done < 0 || sp.done > sp.count {
				t.Fatalf("span done %d of %d", sp.done, sp.count)
			}
			done += sp.done
		}
		if w.pending < 0 || w.pending+done > 50 {
			t.Fatalf("pending %d", w.pending)
		}
	})
}

// The decoders of what a backend's peers send: a Runner's chunk arguments
// (from a remote caller), and the results a pool from Open receives (from
// a remote host), whole or as one item's value.
func FuzzBackendInput(f *testing.F) {
	for _, s := range seedResults() {
		f.Add(s, uint8(3))
	}
	var es encState
	args, _ := newCodec[int]().enc(&es, nil, ptr(5))
	args, _ = newCodec[string]().enc(&es, args, ptr("x"))
	f.Add(args, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		count := int(n)
		if offs, err := splitArgs(b, count); err == nil {
			if len(offs) != count+1 || offs[0] != 0 || offs[count] != len(b) {
				t.Fatalf("offsets %v for %d values in %d bytes", offs, count, len(b))
			}
			for i := range count {
				if offs[i] >= offs[i+1] {
					t.Fatalf("offsets %v", offs)
				}
			}
		}
		// A local pool's results relayed to a backend, as a Runner sees
		// them: each index delivered at most once.
		seen := map[int]bool{}
		s := &rawSink{p: &Pool{}, base: 10, left: count, got: make([]uint64, (count+63)/64),
			done: make(chan struct{}), deliverFn: func(r driver.Result) bool {
				if seen[r.Index] || r.Index < 10 || r.Index >= 10+count {
					t.Fatalf("result %d delivered twice or out of range", r.Index)
				}
				seen[r.Index] = true
				return true
			}}
		s.j = &job{sink: s}
		s.deliver(b, 0, 0, count)
		// One item's value, as a pool from Open decodes it.
		newCollector[int](nil, 1, modeOrdered, &callOptions{}, nil).value(0, b)
		newCollector[any](nil, 1, modeOrdered, &callOptions{}, nil).value(0, b)
		mp := &Pool{}
		mc := newCollector[[]string](mp, 1, modeMap, &callOptions{}, nil)
		mc.j = &job{n: 1, limit: 1, sink: mc}
		mc.value(0, b)
	})
}

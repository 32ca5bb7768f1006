package pool

import (
	"encoding/binary"
	"testing"
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

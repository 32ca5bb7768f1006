//go:build linux

package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/mpgo/multiprocessing/internal/msgp"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/mpgo/multiprocessing/pool/driver"
	"github.com/nats-io/nats.go"
)

// FuzzResults feeds arbitrary bytes to the decoder of results messages,
// which come from other hosts: it must return records or an error, never
// panic, and never claim more bytes than it was given.
func FuzzResults(f *testing.F) {
	b := appendResultsHeader(nil, 7)
	b = appendResult(b, driver.Result{Index: 3, Value: msgp.AppendInt(nil, 42)})
	b = appendResult(b, driver.Result{Index: 4, Err: &pool.TaskError{Index: 4, Message: "bad", Stack: "stack"}})
	b = appendResult(b, driver.Result{Index: 5, Err: &pool.WorkerDiedError{Index: 5, Pid: 9, Code: -9, Signal: 9}})
	b = appendResult(b, driver.Result{Index: 6, Err: driver.ErrSkipped})
	b = appendResult(b, driver.Result{Index: 7, Err: pool.ErrTimeout})
	f.Add(b)
	f.Add([]byte{msgResults})
	f.Add([]byte{msgPing})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, rr, err := readResultsHeader(b)
		if err != nil {
			return
		}
		for rr.more() {
			res, err := rr.next()
			if err != nil {
				return
			}
			if rr.p > len(b) || res.Index < 0 {
				t.Fatalf("read past the end or a negative index: %d > %d, %d", rr.p, len(b), res.Index)
			}
		}
	})
}

func TestResultsRoundTrip(t *testing.T) {
	te := &pool.TaskError{Index: 4, Message: "bad", Stack: "stack"}
	in := []driver.Result{
		{Index: 3, Value: msgp.AppendString(nil, "x")},
		{Index: 4, Err: te},
		{Index: 5, Err: &pool.WorkerDiedError{Index: 5, Pid: 9, Code: -9, Signal: 9}},
		{Index: 6, Err: driver.ErrSkipped},
		{Index: 7, Err: pool.ErrTimeout},
		{Index: 8, Err: &remoteError{"cancelled", []error{te, context.Canceled}}},
	}
	b := appendResultsHeader(nil, 11)
	for _, r := range in {
		b = appendResult(b, r)
	}
	chunk, rr, err := readResultsHeader(b)
	if err != nil || chunk != 11 {
		t.Fatal(chunk, err)
	}
	var out []driver.Result
	for rr.more() {
		r, err := rr.next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if len(out) != len(in) || string(out[0].Value) != string(in[0].Value) {
		t.Fatalf("%v", out)
	}
	var gotTE *pool.TaskError
	if !errors.As(out[1].Err, &gotTE) || gotTE.Message != "bad" || gotTE.Stack != "stack" || gotTE.Index != 4 {
		t.Errorf("task error: %v", out[1].Err)
	}
	var wd *pool.WorkerDiedError
	if !errors.As(out[2].Err, &wd) || wd.Pid != 9 || wd.Signal != 9 || wd.Code != -9 {
		t.Errorf("worker died: %v", out[2].Err)
	}
	if !errors.Is(out[3].Err, driver.ErrSkipped) || !errors.Is(out[4].Err, pool.ErrTimeout) {
		t.Errorf("sentinels: %v, %v", out[3].Err, out[4].Err)
	}
	if !errors.Is(out[5].Err, context.Canceled) || !errors.As(out[5].Err, &gotTE) {
		t.Errorf("a cancelled task: %v", out[5].Err)
	}
}

// FuzzTaskHeader and FuzzControl check the other two decoders of peer
// input: a task's headers and a caller's control message.
func FuzzTaskHeader(f *testing.F) {
	f.Add("sq", "0123456789abcdef01234567", "1", "0", "10", "30000")
	f.Add("", "x", "-1", "-5", "0", "0")
	f.Fuzz(func(t *testing.T, name, caller, chunk, start, count, ackWait string) {
		h := nats.Header{}
		h.Set(hdrTask, name)
		h.Set(hdrCaller, caller)
		h.Set(hdrChunk, chunk)
		h.Set(hdrStart, start)
		h.Set(hdrCount, count)
		h.Set(hdrAckWait, ackWait)
		tk, err := parseTask(h)
		if err == nil && (tk.count < 1 || tk.start < 0 || tk.ackWait <= 0) {
			t.Fatalf("accepted %+v", tk)
		}
	})
}

func FuzzControl(f *testing.F) {
	f.Add(appendControl(nil, ctlCancel, "0123456789abcdef01234567", 1, 2, 300))
	f.Add([]byte("A"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseControl(b)
	})
}

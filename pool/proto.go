//go:build linux

package pool

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mpgo/multiprocessing/internal/msgp"
)

// The parent and each worker talk over the worker's own pipe.Conn (one
// connection per worker, so the parent always knows what each worker holds:
// the loky lesson). Every message starts with a kind byte.
//
// Parent to worker:
//
//	'T' then records, each a type byte and fixed-width fields:
//	    1 span: job u64, start u32, count u32, name (u16 length + bytes),
//	            args (u32 length + count msgpack values)
//	    2 stop: job u64, threshold i64 -- run no item of job above
//	            threshold (-1: none), and cancel the ctx of the running one
//	            if it is above
//	    3 span of a job that stops at its first error (Map): as 1;
//	            the worker that fails one of its items runs none of the
//	            job's items above it that it holds, without waiting for the
//	            parent's stop, and sends the failure at once
//
// Worker to parent:
//
//	'H' pid u32: ready (limits applied, initializer done)
//	'E' text: the initializer failed; the worker exits
//	'R' runs: results, each run job u64, start u32, count u32, nbytes u32,
//	    then count records of nbytes in all
//
// A record is a status byte, then for statusOK the msgpack result and for
// statusErr the msgpack array [kind, message, stack]; statusSkipped has
// nothing after it. The status bytes are msgpack positive fixints, so a run
// is also a plain msgpack sequence.
//
// The worker builds its runs in a shared memory segment and sends them from
// there, so that when it dies the parent can still read the results it had
// not yet sent, and knows which item was running (see segment layout).
const (
	msgTasks   = 'T'
	msgHello   = 'H'
	msgInitErr = 'E'
	msgResults = 'R'

	recSpan       = 1
	recStop       = 2
	recSpanStopOn = 3 // recSpan of a job that stops at its first error

	statusOK      = 0
	statusErr     = 1
	statusSkipped = 2

	runHeaderLen = 20
)

// Error kinds carried in error records, so that errors.Is works on the
// context errors a task returns.
const (
	kindError    = 0
	kindPanic    = 1
	kindCanceled = 2
	kindDeadline = 3
	kindInternal = 4 // the argument or result could not be encoded or decoded
)

// Shared memory segment layout, one segment per worker. The worker writes,
// the parent reads: the words while the worker runs (the timeout
// watchdog), the whole segment after it died.
const (
	segSize      = 1 << 20
	segCommitted = 0  // bytes of complete runs at segData
	segState     = 8  // odd while an item runs (runningState), even between spans
	segJob       = 16 // the job of the item in segState
	segFlags     = 32 // flagCPU: the CPU time limit killed the running item
	segData      = 64 // runs; segData-1 holds msgResults so a flush is one slice

	flagCPU = 1
)

// runningState is the state word of the seq-th item a worker runs, index
// idx: seq (mod 2^30) above the index (32 bits, as the protocol's), above
// a 1. It changes at every item, which the timeout watchdog relies on,
// and it names the item, which the parent reads after a death; one word
// makes that one store per item.
func runningState(seq uint64, idx int) int64 {
	return int64((seq&(1<<30-1))<<33 | uint64(uint32(idx))<<1 | 1)
}

// stateIndex is the item index in a state word.
func stateIndex(st int64) int { return int(uint64(st) >> 1 & (1<<32 - 1)) }

var errProto = errors.New("pool: protocol error")

// span is a dispatched range of one job's items.
type spanMsg struct {
	job   uint64
	start int
	count int
	name  string
	args  []byte
	// stopOnErr: a failed item stops the job (Map), so the worker
	// starts none of the job's later items once one of its own failed.
	stopOnErr bool
}

type stopMsg struct {
	job       uint64
	threshold int64
}

func appendSpanHeader(b []byte, job uint64, start, count int, name string, stopOnErr bool) []byte {
	if stopOnErr {
		b = append(b, recSpanStopOn)
	} else {
		b = append(b, recSpan)
	}
	b = binary.BigEndian.AppendUint64(b, job)
	b = binary.BigEndian.AppendUint32(b, uint32(start))
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	return append(b, 0, 0, 0, 0) // args length, patched by finishSpan
}

// finishSpan patches the args length of the span whose header ended at off.
func finishSpan(b []byte, off int) {
	binary.BigEndian.PutUint32(b[off-4:], uint32(len(b)-off))
}

func appendStop(b []byte, s stopMsg) []byte {
	b = append(b, recStop)
	b = binary.BigEndian.AppendUint64(b, s.job)
	return binary.BigEndian.AppendUint64(b, uint64(s.threshold))
}

// parseTasks decodes the body of a 'T' message. Spans alias b.
func parseTasks(b []byte, span func(spanMsg), stop func(stopMsg)) error {
	for len(b) > 0 {
		switch b[0] {
		case recSpan, recSpanStopOn:
			if len(b) < 1+8+4+4+2 {
				return fmt.Errorf("%w: short span record", errProto)
			}
			s := spanMsg{
				job:       binary.BigEndian.Uint64(b[1:]),
				start:     int(binary.BigEndian.Uint32(b[9:])),
				count:     int(binary.BigEndian.Uint32(b[13:])),
				stopOnErr: b[0] == recSpanStopOn,
			}
			nl := int(binary.BigEndian.Uint16(b[17:]))
			b = b[19:]
			if len(b) < nl+4 {
				return fmt.Errorf("%w: short span name", errProto)
			}
			s.name = string(b[:nl])
			al := int(binary.BigEndian.Uint32(b[nl:]))
			b = b[nl+4:]
			if al > len(b) {
				return fmt.Errorf("%w: short span arguments", errProto)
			}
			s.args = b[:al:al]
			b = b[al:]
			span(s)
		case recStop:
			if len(b) < 1+8+8 {
				return fmt.Errorf("%w: short stop record", errProto)
			}
			stop(stopMsg{
				job:       binary.BigEndian.Uint64(b[1:]),
				threshold: int64(binary.BigEndian.Uint64(b[9:])),
			})
			b = b[17:]
		default:
			return fmt.Errorf("%w: record type %d", errProto, b[0])
		}
	}
	return nil
}

// run is one run of results: count records for items start.. of job.
type run struct {
	job     uint64
	start   int
	count   int
	payload []byte
}

// parseRuns splits a results body into runs. It checks the framing only;
// the records are checked as they are decoded.
func parseRuns(b []byte, f func(run) error) error {
	for len(b) > 0 {
		if len(b) < runHeaderLen {
			return fmt.Errorf("%w: short run header", errProto)
		}
		r := run{
			job:   binary.BigEndian.Uint64(b),
			start: int(binary.BigEndian.Uint32(b[8:])),
			count: int(binary.BigEndian.Uint32(b[12:])),
		}
		n := int(binary.BigEndian.Uint32(b[16:]))
		b = b[runHeaderLen:]
		if n > len(b) || r.count > n {
			// Every record is at least one byte.
			return fmt.Errorf("%w: run of %d records in %d bytes, %d left", errProto, r.count, n, len(b))
		}
		r.payload = b[:n:n]
		b = b[n:]
		if err := f(r); err != nil {
			return err
		}
	}
	return nil
}

func putRunHeader(b []byte, job uint64, start, count, nbytes int) {
	binary.BigEndian.PutUint64(b, job)
	binary.BigEndian.PutUint32(b[8:], uint32(start))
	binary.BigEndian.PutUint32(b[12:], uint32(count))
	binary.BigEndian.PutUint32(b[16:], uint32(nbytes))
}

// appendErrRecord appends a statusErr record.
func appendErrRecord(b []byte, kind int, msg, stack string) []byte {
	b = append(b, statusErr)
	b = msgp.AppendArrayHeader(b, 3)
	b = msgp.AppendInt(b, int64(kind))
	b = msgp.AppendString(b, msg)
	return msgp.AppendString(b, stack)
}

// readErrRecord reads the body of a statusErr record.
func readErrRecord(d *decState, index int) (*TaskError, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	if n != 3 {
		return nil, fmt.Errorf("%w: error record of %d fields", errProto, n)
	}
	kind, err := d.int64()
	if err != nil {
		return nil, err
	}
	msg, err := d.str()
	if err != nil {
		return nil, err
	}
	stack, err := d.str()
	if err != nil {
		return nil, err
	}
	return &TaskError{Index: index, Message: msg, Stack: stack, kind: int(kind)}, nil
}

// skipRecord steps over one record of any status.
func skipRecord(d *decState) error {
	st, err := d.byte1()
	if err != nil {
		return err
	}
	switch st {
	case statusOK:
		return d.skip()
	case statusErr:
		_, err := readErrRecord(d, 0)
		return err
	case statusSkipped:
		return nil
	}
	return fmt.Errorf("%w: record status %d", errProto, st)
}

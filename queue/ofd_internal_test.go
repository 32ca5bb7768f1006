//go:build linux

package queue

import (
	"context"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ofdArg struct {
	Q      *Queue[int]
	Report *Simple[string]
	Hold   bool // take lockW and keep it until killed
}

// ofdProbe runs in a child: it tries lockW through its own description and
// through the description it inherited, and reports both.
var ofdProbe = process.Register("queue.internal.ofdprobe", func(ctx context.Context, a ofdArg) error {
	c := a.Q.c
	own, err := ofdTryLock(c.lockFD, lockW)
	if err != nil {
		return err
	}
	if own {
		ofdUnlock(c.lockFD, lockW)
	}
	inherited, err := ofdTryLock(c.seg.FD(), lockW)
	if err != nil {
		return err
	}
	if inherited {
		ofdUnlock(c.seg.FD(), lockW)
	}
	if err := a.Report.Put(ctx, fmt3(own, inherited)); err != nil {
		return err
	}
	if a.Hold {
		ok, err := ofdTryLock(c.lockFD, lockW)
		if err != nil || !ok {
			return err
		}
		if err := a.Report.Put(ctx, "holding"); err != nil {
			return err
		}
		<-ctx.Done()
	}
	return nil
})

func fmt3(own, inherited bool) string {
	s := "own:"
	if own {
		s += "locked"
	} else {
		s += "refused"
	}
	s += " inherited:"
	if inherited {
		s += "locked"
	} else {
		s += "refused"
	}
	return s
}

// TestOFDLocksAcrossProcesses checks the property the queue's robustness
// rests on: a lock taken through a description a process opened itself
// (re-opening /proc/self/fd/N) excludes other processes and is released by
// the kernel when its holder dies; the description inherited with the
// descriptor is shared, so locking through it would exclude nobody.
func TestOFDLocksAcrossProcesses(t *testing.T) {
	ctx := testbin.Context(t)
	q, err := New[int](0)
	require.NoError(t, err)
	defer q.Close()
	rep, err := NewSimple[string]()
	require.NoError(t, err)
	defer rep.Close()
	c := q.c

	// Parent holds lockW through its own description.
	ok, err := ofdTryLock(c.lockFD, lockW)
	require.NoError(t, err)
	require.True(t, ok)
	p := process.New(ofdProbe, ofdArg{Q: q, Report: rep})
	require.NoError(t, p.Start())
	s, err := rep.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "own:refused inherited:refused", s, "the parent's lock excludes the child")
	require.NoError(t, p.Join(ctx))
	ofdUnlock(c.lockFD, lockW)

	// Parent locks through the shared, inherited description: the child's
	// copy of that description is the same one, so it "gets" the lock too.
	ok, err = ofdTryLock(c.seg.FD(), lockW)
	require.NoError(t, err)
	require.True(t, ok)
	p = process.New(ofdProbe, ofdArg{Q: q, Report: rep})
	require.NoError(t, p.Start())
	s, err = rep.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "own:refused inherited:locked", s, "a shared description shares its locks")
	require.NoError(t, p.Join(ctx))
	ofdUnlock(c.seg.FD(), lockW)

	// A child that dies holding the lock: the kernel releases it.
	p = process.New(ofdProbe, ofdArg{Q: q, Report: rep, Hold: true})
	require.NoError(t, p.Start())
	_, err = rep.Get(ctx) // its probe report
	require.NoError(t, err)
	s, err = rep.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, "holding", s)
	assert.True(t, ofdHeld(c.seg.FD(), lockW), "the probe description sees the child's lock")
	ok, err = ofdTryLock(c.lockFD, lockW)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, p.Kill())
	<-p.Done()
	assert.False(t, ofdHeld(c.seg.FD(), lockW), "released by the kernel")
	ok, err = ofdTryLock(c.lockFD, lockW)
	require.NoError(t, err)
	assert.True(t, ok)
	ofdUnlock(c.lockFD, lockW)
}

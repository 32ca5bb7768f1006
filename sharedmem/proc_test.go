//go:build linux

package sharedmem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/lock"
	"github.com/mpgo/multiprocessing/pipe"
	"github.com/mpgo/multiprocessing/process"
	"github.com/mpgo/multiprocessing/sharedmem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type pingArg struct {
	M    *sharedmem.Memory
	A    *sharedmem.Array[int64]
	V    *sharedmem.Value[float64]
	Conn *pipe.Conn
}

// pingChild writes to every object, tells the parent, waits for the
// parent's writes and checks that it sees them.
var pingChild = process.Register("sharedmem_test.ping", func(ctx context.Context, a pingArg) error {
	defer a.Conn.Close()
	defer a.M.Close()
	defer a.A.Close()
	defer a.V.Close()
	copy(a.M.Bytes(), "from the child")
	a.A.Slice()[a.A.Len()-1] = 42
	a.V.Store(2.5)
	if err := a.Conn.Send("written"); err != nil {
		return err
	}
	var s string
	if err := a.Conn.Recv(&s); err != nil {
		return err
	}
	if got := string(a.M.Bytes()[:15]); got != "from the parent" {
		return fmt.Errorf("child sees %q in the Memory", got)
	}
	if got := a.A.Slice()[0]; got != -7 {
		return fmt.Errorf("child sees %d in the Array", got)
	}
	if got := a.V.Load(); got != -1.25 {
		return fmt.Errorf("child sees %v in the Value", got)
	}
	return nil
})

// TestSharedNotCopied: the child's writes are seen by the parent, and the
// parent's later writes by the child: one set of pages, not copies.
func TestSharedNotCopied(t *testing.T) {
	m, err := sharedmem.New(1 << 20)
	require.NoError(t, err)
	defer m.Close()
	a, err := sharedmem.NewArray[int64](1000)
	require.NoError(t, err)
	defer a.Close()
	v, err := sharedmem.NewValue(0.0)
	require.NoError(t, err)
	defer v.Close()
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	p := start(t, pingChild, pingArg{M: m, A: a, V: v, Conn: c2})
	c2.Close()

	var s string
	require.NoError(t, c1.Recv(&s))
	assert.Equal(t, "from the child", string(m.Bytes()[:14]))
	assert.Equal(t, int64(42), a.Slice()[999])
	assert.Equal(t, 2.5, v.Load())
	copy(m.Bytes(), "from the parent")
	a.Slice()[0] = -7
	v.Store(-1.25)
	require.NoError(t, c1.Send("your turn"))
	join(t, p)
}

type addArg struct {
	I  *sharedmem.Value[int64]
	F  *sharedmem.Value[float64]
	B  *sharedmem.Value[int8]
	H  *sharedmem.Value[uint16]
	N  int
	Go *lock.Event
}

var adder = process.Register("sharedmem_test.add", func(ctx context.Context, a addArg) error {
	if err := a.Go.Wait(ctx); err != nil {
		return err
	}
	for range a.N {
		a.I.Add(1)
		a.F.Add(1)
		a.B.Add(1)
		a.H.Add(3)
	}
	return nil
})

// TestAddAcrossProcesses: 4 processes × 100k Add lose nothing, for a 64-bit
// integer, a float (compare-and-swap on its bits) and the 8- and 16-bit
// types (compare-and-swap on their 32-bit word).
func TestAddAcrossProcesses(t *testing.T) {
	const procs, n = 4, 100_000
	i, err := sharedmem.NewValue[int64](0)
	require.NoError(t, err)
	defer i.Close()
	f, err := sharedmem.NewValue[float64](0)
	require.NoError(t, err)
	defer f.Close()
	b, err := sharedmem.NewValue[int8](0)
	require.NoError(t, err)
	defer b.Close()
	h, err := sharedmem.NewValue[uint16](0)
	require.NoError(t, err)
	defer h.Close()
	ev, err := lock.NewEvent()
	require.NoError(t, err)
	defer ev.Close()
	var ps []*process.Process
	for range procs {
		ps = append(ps, start(t, adder, addArg{I: i, F: f, B: b, H: h, N: n, Go: ev}))
	}
	require.NoError(t, ev.Set()) // all at once, for contention
	for _, p := range ps {
		join(t, p)
	}
	assert.Equal(t, int64(procs*n), i.Load())
	assert.Equal(t, float64(procs*n), f.Load())
	assert.Equal(t, int8(procs*n%256-256), b.Load(), "400000 mod 256 = 128, wrapped to -128")
	assert.Equal(t, uint16(3*procs*n%65536), h.Load())
}

type buyerArg struct {
	Stock *sharedmem.Value[int32]
	Sold  *sharedmem.Array[int64] // one slot per buyer
	Me    int
	Go    *lock.Event
}

// buyer sells tickets by compare-and-swap until none are left, no lock.
var buyer = process.Register("sharedmem_test.buyer", func(ctx context.Context, a buyerArg) error {
	if err := a.Go.Wait(ctx); err != nil {
		return err
	}
	for {
		s := a.Stock.Load()
		if s <= 0 {
			return nil
		}
		if a.Stock.CompareAndSwap(s, s-1) {
			a.Sold.Slice()[a.Me]++ // only this buyer writes its slot
		}
	}
})

func TestTicketSaleCAS(t *testing.T) {
	const buyers, stock = 4, 20_000
	v, err := sharedmem.NewValue[int32](stock)
	require.NoError(t, err)
	defer v.Close()
	sold, err := sharedmem.NewArray[int64](buyers)
	require.NoError(t, err)
	defer sold.Close()
	ev, err := lock.NewEvent()
	require.NoError(t, err)
	defer ev.Close()
	var ps []*process.Process
	for i := range buyers {
		ps = append(ps, start(t, buyer, buyerArg{Stock: v, Sold: sold, Me: i, Go: ev}))
	}
	require.NoError(t, ev.Set())
	for _, p := range ps {
		join(t, p)
	}
	var total int64
	for _, s := range sold.Slice() {
		total += s
	}
	assert.Equal(t, int64(stock), total, "sold exactly the stock: %v", sold.Slice())
	assert.Equal(t, int32(0), v.Load())
}

type transferArg struct {
	A  *sharedmem.Array[int64]
	N  int
	Go *lock.Event
}

// transfer moves one unit from account 0 to account 1, then counts the
// move in slot 2, under the array's lock: a compound update whose
// invariant (0 + 1 == 0) it also checks each time it holds the lock.
var transfer = process.Register("sharedmem_test.transfer", func(ctx context.Context, a transferArg) error {
	if err := a.Go.Wait(ctx); err != nil {
		return err
	}
	s, l := a.A.Slice(), a.A.Lock()
	for range a.N {
		if err := l.Acquire(ctx); err != nil {
			return err
		}
		if s[0]+s[1] != 0 {
			l.Release()
			return fmt.Errorf("invariant broken: %d + %d", s[0], s[1])
		}
		s[0]--
		s[1]++
		s[2]++
		if err := l.Release(); err != nil {
			return err
		}
	}
	return nil
})

func TestArrayLockInvariant(t *testing.T) {
	const procs = 4
	n := 20_000
	if testbin.RaceEnabled {
		n = 2_000
	}
	a, err := sharedmem.NewArray[int64](3)
	require.NoError(t, err)
	defer a.Close()
	ev, err := lock.NewEvent()
	require.NoError(t, err)
	defer ev.Close()
	var ps []*process.Process
	for range procs {
		ps = append(ps, start(t, transfer, transferArg{A: a, N: n, Go: ev}))
	}
	require.NoError(t, ev.Set())
	for _, p := range ps {
		join(t, p)
	}
	s := a.Slice()
	assert.Equal(t, []int64{-procs * int64(n), procs * int64(n), procs * int64(n)}, s)
}

type namedArg struct {
	Name string
	Done *pipe.Conn
}

var openNamed = process.Register("sharedmem_test.openNamed", func(ctx context.Context, a namedArg) error {
	defer a.Done.Close()
	m, err := sharedmem.Open(a.Name)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Name() != a.Name || m.Size() != 5000 {
		return fmt.Errorf("opened %q of %d bytes", m.Name(), m.Size())
	}
	if got := string(m.Bytes()[:6]); got != "parent" {
		return fmt.Errorf("child reads %q", got)
	}
	copy(m.Bytes()[4990:], "child")
	return a.Done.Send(true)
})

// TestNamedAcrossProcesses: a block created in Go, opened by name in a
// child, unlinked, gone from /dev/shm.
func TestNamedAcrossProcesses(t *testing.T) {
	name := blockName(t)
	m, err := sharedmem.Create(name, 5000)
	require.NoError(t, err)
	defer m.Close()
	copy(m.Bytes(), "parent")
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	p := start(t, openNamed, namedArg{Name: name, Done: c2})
	c2.Close()
	var ok bool
	require.NoError(t, c1.Recv(&ok))
	join(t, p)
	assert.Equal(t, "child", string(m.Bytes()[4990:4995]))

	require.NoError(t, m.Unlink())
	_, err = os.Stat("/dev/shm/" + name)
	assert.True(t, errors.Is(err, os.ErrNotExist), "still in /dev/shm: %v", err)
	assert.Equal(t, "child", string(m.Bytes()[4990:4995]), "the mapping outlives the name")
}

// TestPassNamed: a named block passed as a handle keeps its name.
func TestPassNamed(t *testing.T) {
	name := blockName(t)
	m, err := sharedmem.Create(name, 100)
	require.NoError(t, err)
	defer m.Close()
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	defer c2.Close()
	require.NoError(t, c1.Send(m))
	var r *sharedmem.Memory
	require.NoError(t, c2.Recv(&r))
	defer r.Close()
	assert.Equal(t, name, r.Name())
	assert.Equal(t, 100, r.Size())
	m.Bytes()[50] = 9
	assert.Equal(t, byte(9), r.Bytes()[50])

	// A Memory arrives working in an interface-typed field too.
	require.NoError(t, c1.Send(struct{ X any }{m}))
	var x struct{ X any }
	require.NoError(t, c2.Recv(&x))
	xm, ok := x.X.(*sharedmem.Memory)
	require.True(t, ok, "%T", x.X)
	defer xm.Close()
	assert.Equal(t, byte(9), xm.Bytes()[50])
	require.NoError(t, r.Unlink())
}

type holder struct {
	A   *sharedmem.Array[float64]
	Got *pipe.Conn
}

// hold takes the array's lock, writes, reports and waits to be killed.
var hold = process.Register("sharedmem_test.hold", func(ctx context.Context, a holder) error {
	if err := a.A.Lock().Acquire(ctx); err != nil {
		return err
	}
	a.A.Slice()[0] = 1
	if err := a.Got.Send(true); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// use takes the lock (recovering it from the dead holder), checks the dead
// child's write and adds its own.
var use = process.Register("sharedmem_test.use", func(ctx context.Context, a holder) error {
	err := a.A.Lock().Acquire(ctx)
	if !errors.Is(err, lock.ErrOwnerDied) {
		return fmt.Errorf("Acquire after the holder was killed: %v, want ErrOwnerDied", err)
	}
	defer a.A.Lock().Release()
	s := a.A.Slice()
	if s[0] != 1 {
		return fmt.Errorf("the killed child's write is lost: %v", s[0])
	}
	s[1] = 2
	return nil
})

// TestKilledHolder: a block passed to a child that is SIGKILLed (while it
// holds the array's lock) is still usable by the others.
func TestKilledHolder(t *testing.T) {
	a, err := sharedmem.NewArray[float64](1 << 16)
	require.NoError(t, err)
	defer a.Close()
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	p := start(t, hold, holder{A: a, Got: c2})
	var ok bool
	require.NoError(t, c1.Recv(&ok))
	require.NoError(t, p.Kill())
	<-p.Done()
	code, _ := p.ExitCode()
	assert.Equal(t, -int(syscall.SIGKILL), code)

	q := start(t, use, holder{A: a, Got: c2})
	c2.Close()
	join(t, q)
	assert.Equal(t, []float64{1, 2}, a.Slice()[:2])
	a.Slice()[2] = 3 // and the parent's own mapping still works
}

type staleArg struct{ M *sharedmem.Memory }

// writeAfterClose keeps a slice past Close, maps another block, and writes
// through the stale slice. Unmapped addresses are what the next mapping
// gets (the kernel reuses the hole), so without the guard mapping the write
// would land in the new block, silently.
var writeAfterClose = process.Register("sharedmem_test.writeAfterClose", func(ctx context.Context, a staleArg) error {
	b := a.M.Bytes()
	a.M.Close()
	next, err := sharedmem.New(len(b))
	if err != nil {
		return err
	}
	b[0] = 1
	if next.Bytes()[0] == 1 {
		return fmt.Errorf("a write after Close landed in another block")
	}
	return fmt.Errorf("a write after Close did not fault (m reachable: %d)", a.M.Size())
})

func TestStaleSliceFaults(t *testing.T) {
	m, err := sharedmem.New(4096)
	require.NoError(t, err)
	defer m.Close()
	var stderr bytes.Buffer
	p := start(t, writeAfterClose, staleArg{m}, process.WithStderr(&stderr))
	err = p.Join(testbin.Context(t))
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.Code, "the Go runtime's exit code for a fatal fault: %s %s", ee.Message, stderr.String())
	assert.Contains(t, stderr.String(), "unexpected fault address")
	assert.Equal(t, byte(0), m.Bytes()[0], "the write did not reach the block")
}

// TestRecvElemMismatch: an Array of one element type cannot be received as
// another, nor in an interface-typed field.
func TestRecvElemMismatch(t *testing.T) {
	a, err := sharedmem.NewArray[int32](4)
	require.NoError(t, err)
	defer a.Close()
	c1, c2, err := pipe.Pipe()
	require.NoError(t, err)
	defer c1.Close()
	defer c2.Close()
	before := testbin.FDCount(t)

	require.NoError(t, c1.Send(a))
	var f *sharedmem.Array[float32]
	err = c2.Recv(&f)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "int32")

	require.NoError(t, c1.Send(struct{ X any }{a}))
	var x struct{ X any }
	err = c2.Recv(&x)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "interface-typed")

	require.NoError(t, c1.Send(a))
	var ok *sharedmem.Array[int32]
	require.NoError(t, c2.Recv(&ok))
	ok.Slice()[3] = 5
	assert.Equal(t, int32(5), a.Slice()[3])
	require.NoError(t, ok.Close())
	assert.Equal(t, before, testbin.FDCount(t), "refused handles leave no descriptor behind")

	type named int32
	require.NoError(t, c1.Send(a))
	var n *sharedmem.Array[named]
	require.NoError(t, c2.Recv(&n), "same kind and size")
	require.NoError(t, n.Close())
}

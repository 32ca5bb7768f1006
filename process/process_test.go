package process_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	if os.Getenv("MPGO_BENCH_EXIT") != "" {
		os.Exit(0) // BenchmarkExecSelf's child: the cost of a bare re-exec
	}
	process.Init()
	os.Exit(m.Run())
}

var noop = process.Register("test.noop", func(ctx context.Context, _ struct{}) error { return nil })

var fail = process.Register("test.fail", func(ctx context.Context, msg string) error { return errors.New(msg) })

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNoop(t *testing.T) {
	p := process.New(noop, struct{}{})
	require.NoError(t, p.Start())
	require.NoError(t, p.Join(ctxT(t)))
	code, exited := p.ExitCode()
	assert.True(t, exited)
	assert.Equal(t, 0, code)
}

func TestFail(t *testing.T) {
	p := process.New(fail, "boom")
	require.NoError(t, p.Start())
	err := p.Join(ctxT(t))
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.Code)
	assert.Equal(t, "boom", ee.Message)
	fmt.Println(err)
}

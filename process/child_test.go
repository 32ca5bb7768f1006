package process_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/process"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var goexit = process.Register("test.goexit", func(ctx context.Context, _ struct{}) error {
	runtime.Goexit()
	return nil
})

// runtime.Goexit in the function ends the child with an error instead of
// leaving it (and Join) hanging.
func TestGoexitInFunction(t *testing.T) {
	p := process.New(goexit, struct{}{})
	require.NoError(t, p.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Join(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.Kill()
		p.Join(ctxT(t))
		t.Fatal("the child hung after runtime.Goexit")
	}
	var ee *process.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.Code)
	assert.Contains(t, ee.Message, "Goexit")
}

//go:build linux

package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/pool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type logArg struct {
	Path   string
	I      int
	FailAt int
	Sleep  time.Duration
}

// logged appends its index to a file, so the test sees which tasks ran.
var logged = pool.Register("test.logged", func(ctx context.Context, a logArg) (int, error) {
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(f, a.I)
	f.Close()
	if a.I == a.FailAt {
		return 0, errors.New("failed on purpose")
	}
	select {
	case <-time.After(a.Sleep):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return a.I, nil
})

func ranTasks(t *testing.T, path string) []int {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []int
	for _, l := range strings.Fields(string(b)) {
		i, err := strconv.Atoi(l)
		require.NoError(t, err)
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Map's error is the lowest failing index whatever the timing (the items
// before it still run), and nothing after it starts once it is known.
func TestMapRunsNothingAfterAFailure(t *testing.T) {
	p := newPool(t, pool.Workers(2))
	for _, failAt := range []int{0, 5} {
		path := t.TempDir() + "/ran"
		args := make([]logArg, 40)
		for i := range args {
			args[i] = logArg{Path: path, I: i, FailAt: failAt, Sleep: 30 * time.Millisecond}
		}
		start := time.Now()
		_, err := pool.Map(testbin.Context(t), p, logged, args, pool.Chunksize(1))
		var te *pool.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, failAt, te.Index)
		assert.Less(t, time.Since(start), time.Second)
		ran := ranTasks(t, path)
		for i := 0; i <= failAt; i++ {
			assert.Contains(t, ran, i, "item %d before the failure did not run", i)
		}
		// Each worker holds one long task at a time: at most the one
		// running beside the failure ran after it.
		assert.LessOrEqual(t, len(ran), failAt+2, "ran %v", ran)
	}
}

// A worker that fails an item of a Map starts none of the later items it
// holds, without waiting for the parent's stop: here one worker holds the
// whole job in one chunk, so nothing but the worker itself can stop it in
// time.
func TestMapFailingWorkerStopsItsOwnItems(t *testing.T) {
	p := newPool(t, pool.Workers(1))
	path := t.TempDir() + "/ran"
	args := make([]logArg, 10)
	for i := range args {
		args[i] = logArg{Path: path, I: i, FailAt: 2, Sleep: 5 * time.Millisecond}
	}
	_, err := pool.Map(testbin.Context(t), p, logged, args, pool.Chunksize(len(args)))
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 2, te.Index)
	assert.Equal(t, []int{0, 1, 2}, ranTasks(t, path))
	// Imap is not stopped by an error: every item runs.
	path = t.TempDir() + "/ran"
	for i := range args {
		args[i].Path = path
	}
	nerr := 0
	for _, err := range pool.Imap(testbin.Context(t), p, logged, args, pool.Chunksize(len(args))) {
		if err != nil {
			nerr++
		}
	}
	assert.Equal(t, 1, nerr)
	assert.Len(t, ranTasks(t, path), len(args))
}

//go:build linux

package manager_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/multiprocessing/internal/testbin"
	"github.com/mpgo/multiprocessing/manager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentCalls: many goroutines share one connection, with blocking
// calls parked among them; every call gets its own answer.
func TestConcurrentCalls(t *testing.T) {
	m := start(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	q, err := manager.NewQueue[int](ctx, m, 0)
	require.NoError(t, err)
	const workers, calls = 64, 100
	got := make(chan int, workers)
	var getters sync.WaitGroup
	for range workers / 4 {
		getters.Add(1)
		go func() { // parked until the adders put
			defer getters.Done()
			v, err := q.Get(ctx)
			assert.NoError(t, err)
			got <- v
		}()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for range calls {
				n, err := d.Add(ctx, "total", 1)
				if !assert.NoError(t, err) {
					return
				}
				assert.Greater(t, n, last, "Add results only grow")
				last = n
				_, err = d.SetDefault(ctx, "w", w)
				assert.NoError(t, err)
			}
			if w%4 == 0 {
				assert.NoError(t, q.Put(ctx, w))
			}
		}()
	}
	wg.Wait()
	getters.Wait()
	close(got)
	sum := 0
	for v := range got {
		sum += v
	}
	want := 0
	for w := 0; w < workers; w += 4 {
		want += w
	}
	assert.Equal(t, want, sum)
	n, _, err := d.Get(ctx, "total")
	require.NoError(t, err)
	assert.Equal(t, workers*calls, n)
}

// TestStoppedServer: a server that stops answering without dying (here:
// SIGSTOP) does not hold a call past its ctx: a plain call and a blocking
// one (a queue Get, whose cancel the server cannot answer either) return
// within their ctx plus testbin.Slack, and the connection is given up.
func TestStoppedServer(t *testing.T) {
	m := startToKill(t)
	ctx := testbin.Context(t)
	d, err := manager.NewDict[string, int](ctx, m)
	require.NoError(t, err)
	network, addr := m.Address()
	m2, err := manager.Connect(ctx, network, addr, nil)
	require.NoError(t, err)
	defer m2.Close()
	q, err := manager.NewQueue[int](ctx, m2, 0)
	require.NoError(t, err)
	pid := manager.ServerProcess(m).Pid()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	defer syscall.Kill(pid, syscall.SIGCONT)
	// The stop takes effect asynchronously: wait until every thread of
	// the server is stopped.
	waitFor(t, ctx, func() bool { return allStopped(pid) })
	const limit = time.Second
	var wg sync.WaitGroup
	wg.Go(func() {
		short, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		begin := time.Now()
		_, _, err := d.Get(short, "k")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, manager.ErrDisconnected)
		assert.Less(t, time.Since(begin), limit+testbin.Slack, "plain call")
	})
	wg.Go(func() {
		short, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		begin := time.Now()
		_, err := q.Get(short)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(begin), limit+testbin.Slack, "blocking call")
	})
	wg.Wait()
	syscall.Kill(pid, syscall.SIGCONT)
}

// allStopped reports whether every thread of pid is in state T (stopped).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

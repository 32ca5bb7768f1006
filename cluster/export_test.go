//go:build linux

package cluster

import (
	"context"
	"fmt"
)

// DebugState describes queue name's streams, for test failure messages.
func DebugState(c *Cluster, name string) string {
	ctx := context.Background()
	out := ""
	for _, s := range []string{queueStreamPrefix + name, lostStreamPrefix + name} {
		st, err := c.js.Stream(ctx, s)
		if err != nil {
			out += fmt.Sprintf("%s: %v\n", s, err)
			continue
		}
		i, _ := st.Info(ctx)
		out += fmt.Sprintf("%s: %+v\n", s, i.State)
	}
	cons, _ := c.js.Consumer(ctx, queueStreamPrefix+name, queueConsumer)
	ci, _ := cons.Info(ctx)
	out += fmt.Sprintf("consumer: pending %d ackpending %d redelivered %d waiting %d delivered %+v ackfloor %+v\n", ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered, ci.AckFloor)
	return out
}

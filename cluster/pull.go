//go:build linux

package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// qmsg is an item delivered by the queue's consumer, with the
// acknowledgements JetStream takes on its reply subject.
type qmsg struct {
	nc *nats.Conn
	m  *nats.Msg
}

func (q *qmsg) Data() []byte      { return q.m.Data }
func (q *qmsg) Ack() error        { return q.nc.Publish(q.m.Reply, []byte("+ACK")) }
func (q *qmsg) Nak() error        { return q.nc.Publish(q.m.Reply, []byte("-NAK")) }
func (q *qmsg) Term() error       { return q.nc.Publish(q.m.Reply, []byte("+TERM")) }
func (q *qmsg) InProgress() error { return q.nc.Publish(q.m.Reply, []byte("+WPI")) }

// DoubleAck acknowledges and waits for the server's confirmation.
func (q *qmsg) DoubleAck(ctx context.Context) error {
	_, err := q.nc.RequestWithContext(ctx, q.m.Reply, []byte("+ACK"))
	return err
}

// meta returns how many times the item was delivered and its stream
// sequence, from the reply subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...
// or, with a domain and account hash, $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>...
func (q *qmsg) meta() (delivered, sseq uint64, err error) {
	t := strings.Split(q.m.Reply, ".")
	i := 4
	if len(t) >= 11 {
		i = 6
	}
	if len(t) < 9 || t[0] != "$JS" || t[1] != "ACK" {
		return 0, 0, fmt.Errorf("cluster: not a JetStream reply subject: %q", q.m.Reply)
	}
	if delivered, err = strconv.ParseUint(t[i], 10, 64); err == nil {
		sseq, err = strconv.ParseUint(t[i+1], 10, 64)
	}
	return delivered, sseq, err
}

// puller pulls items of one queue's consumer into one subscription that
// lives as long as the handle. An item that a pull request brings after
// the Get that sent it gave up is not lost: it waits in the subscription
// for the next Get, or goes back at Close.
type puller struct {
	nc     *nats.Conn
	api    string // the consumer's next-message subject
	prefix string // this handle's inbox; request k replies to prefix.k
	sub    *nats.Subscription
	seq    int
}

func newPuller(nc *nats.Conn, stream, consumer string) (*puller, error) {
	p := &puller{
		nc:     nc,
		api:    "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		prefix: nc.NewRespInbox(),
	}
	sub, err := nc.SubscribeSync(p.prefix + ".*")
	if err != nil {
		return nil, err
	}
	// Never drop a delivered item as a slow consumer: what arrives is
	// bounded by the pull requests this handle sent.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	p.sub = sub
	return p, nil
}

// request asks for up to n items: at once (expires 0: what is waiting
// now) or waiting up to expires. It returns the reply subject, on which the
// server's status for this request arrives.
func (p *puller) request(n int, expires time.Duration) (string, error) {
	p.seq++
	reply := p.prefix + "." + strconv.Itoa(p.seq)
	var body string
	if expires <= 0 {
		body = fmt.Sprintf(`{"batch":%d,"no_wait":true}`, n)
	} else {
		body = fmt.Sprintf(`{"batch":%d,"expires":%d}`, n, expires.Nanoseconds())
	}
	return reply, p.nc.PublishRequest(p.api, reply, []byte(body))
}

// isData reports whether m is an item rather than a status of a request.
func isData(m *nats.Msg) bool { return strings.HasPrefix(m.Reply, "$JS.ACK.") }

// status returns the status code of a status message ("404", "408", ...).
func status(m *nats.Msg) string {
	if m.Header == nil {
		return ""
	}
	return m.Header.Get("Status")
}

// drain returns the items already delivered, without waiting.
func (p *puller) drain() []*qmsg {
	var out []*qmsg
	for {
		if n, _, _ := p.sub.Pending(); n == 0 {
			return out
		}
		m, err := p.sub.NextMsg(time.Millisecond)
		if err != nil {
			return out
		}
		if isData(m) {
			out = append(out, &qmsg{p.nc, m})
		}
	}
}

// collect reads deliveries until request reply is over: n items taken
// (with those already in acc), its status arrived, or ctx ended.
func (p *puller) collect(ctx context.Context, reply string, n int, acc []*qmsg) ([]*qmsg, error) {
	for len(acc) < n {
		m, err := p.sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return acc, ctx.Err()
			}
			return acc, err
		}
		if isData(m) {
			acc = append(acc, &qmsg{p.nc, m})
			continue
		}
		if m.Subject == reply {
			switch status(m) {
			case "100": // heartbeat
				continue
			case "404", "408", "409":
				// No messages, request expired, or the request was
				// refused (409: limits): over; the caller decides.
				return acc, nil
			}
			return acc, fmt.Errorf("pull: status %s %s", status(m), m.Header.Get("Description"))
		}
	}
	return acc, nil
}

// close gives back the items delivered and not taken (at once, not after
// AckWait) and ends the subscription.
func (p *puller) close() {
	for _, m := range p.drain() {
		_ = m.Nak()
	}
	_ = p.sub.Unsubscribe()
}

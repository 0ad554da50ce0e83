package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"coffer/pkg/metrics"
)

// RequestIDHeader is the NATS header that carries the id of the HTTP request
// a command came from, so the writer can log it and store it with the event.
const RequestIDHeader = "X-Request-Id"

// Client sends commands to wallet_writer over NATS request/reply.
type Client struct {
	nc       *nats.Conn
	timeout  time.Duration
	requests *prometheus.HistogramVec
}

// NewClient returns a Client that waits at most timeout for each answer and
// registers its request metrics with reg (nil: none).
func NewClient(nc *nats.Conn, timeout time.Duration, reg prometheus.Registerer) *Client {
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace,
		Name:      "nats_request_duration_seconds",
		Help:      "Command requests to wallet_writer over NATS, by domain, action and outcome: ok (the writer answered, whatever it decided), not_connected, no_responders, timeout, canceled, error.",
		Buckets:   metrics.LatencyBuckets,
	}, []string{"domain", "action", "outcome"})
	if reg != nil {
		reg.MustRegister(requests)
	}
	return &Client{nc: nc, timeout: timeout, requests: requests}
}

// Send delivers cmd for stream id of domain and returns the writer's reply, and whether
// the writer replayed a stored outcome. Transport failures come back as an
// *Error with CodeWriterUnavailable (nobody serves the subject, or NATS is
// down) or CodeWriterTimeout (nobody answered in time; the command may or may
// not have been applied, and a retry with the same ids tells).
func (c *Client) Send(ctx context.Context, domain, id, action string, cmd Command) (Reply, bool, error) {
	start := time.Now()
	r, replayed, outcome, err := c.send(ctx, CommandSubject(domain, id, action), cmd)
	c.requests.WithLabelValues(domain, action, outcome).Observe(time.Since(start).Seconds())
	return r, replayed, err
}

func (c *Client) send(ctx context.Context, subject string, cmd Command) (Reply, bool, string, error) {
	if !c.nc.IsConnected() {
		// Requests would sit in the reconnect buffer until the deadline:
		// say at once that nobody can be reached.
		return Reply{}, false, "not_connected", &Error{Code: CodeWriterUnavailable, Detail: "not connected to NATS; retry shortly"}
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return Reply{}, false, "error", fmt.Errorf("encode command: %w", err)
	}
	msg := &nats.Msg{Subject: subject, Data: body}
	if cmd.RequestID != "" {
		msg.Header = nats.Header{RequestIDHeader: []string{cmd.RequestID}}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Reply{}, false, "no_responders", &Error{Code: CodeWriterUnavailable, Detail: "no writer is serving this stream; retry shortly"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Reply{}, false, "timeout", &Error{Code: CodeWriterTimeout, Detail: fmt.Sprintf("the wallet writer did not answer within %s; retry with the same Idempotency-Key to learn the outcome", c.timeout)}
	case errors.Is(err, context.Canceled):
		return Reply{}, false, "canceled", err
	case err != nil:
		return Reply{}, false, "error", &Error{Code: CodeWriterUnavailable, Detail: "cannot reach the wallet writer: " + err.Error()}
	}
	var r Reply
	if err := json.Unmarshal(resp.Data, &r); err != nil || (r.Result == nil) == (r.Error == nil) {
		return Reply{}, false, "error", fmt.Errorf("malformed reply from writer (%s): %q", resp.Header.Get(micro.ErrorHeader), resp.Data)
	}
	return r, resp.Header.Get(ReplayedHeader) == "true", "ok", nil
}

// PingWriter reports whether at least one wallet_writer answers a micro PING.
func (c *Client) PingWriter(ctx context.Context) error {
	subject, err := micro.ControlSubject(micro.PingVerb, WriterService, "")
	if err != nil {
		return err
	}
	if _, err := c.nc.RequestWithContext(ctx, subject, nil); err != nil {
		return fmt.Errorf("ping %s: %w", WriterService, err)
	}
	return nil
}

// Watch tells on the returned channel (at most one signal waiting) each
// time an event of stream id of domain is published, until stop is called.
// A signal says only "look again": a reader goes to the read model for
// what changed.
func (c *Client) Watch(domain, id string) (events <-chan struct{}, stop func(), err error) {
	ch := make(chan struct{}, 1)
	sub, err := c.nc.Subscribe(EventSubject(domain, id, "*"), func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s.%s: %w", domain, id, err)
	}
	return ch, func() { sub.Unsubscribe() }, nil //nolint:errcheck // gone with the connection otherwise
}

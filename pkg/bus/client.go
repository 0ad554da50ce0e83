package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"coffer/pkg/wallet"
)

// Client sends commands to wallet_writer over NATS request/reply.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewClient returns a Client that waits at most timeout for each answer.
func NewClient(nc *nats.Conn, timeout time.Duration) *Client {
	return &Client{nc: nc, timeout: timeout}
}

// Send delivers cmd for walletID and returns the writer's reply, and whether
// the writer replayed a stored outcome. Transport failures come back as an
// *Error with CodeWriterUnavailable (nobody serves the subject, or NATS is
// down) or CodeWriterTimeout (nobody answered in time; the command may or may
// not have been applied, and a retry with the same ids tells).
func (c *Client) Send(ctx context.Context, walletID string, a wallet.Action, cmd Command) (Reply, bool, error) {
	if !c.nc.IsConnected() {
		// Requests would sit in the reconnect buffer until the deadline:
		// say at once that nobody can be reached.
		return Reply{}, false, &Error{Code: CodeWriterUnavailable, Detail: "not connected to NATS; retry shortly"}
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return Reply{}, false, fmt.Errorf("encode command: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.nc.RequestWithContext(ctx, CommandSubject(walletID, a), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Reply{}, false, &Error{Code: CodeWriterUnavailable, Detail: "no wallet writer is serving this wallet; retry shortly"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Reply{}, false, &Error{Code: CodeWriterTimeout, Detail: fmt.Sprintf("the wallet writer did not answer within %s; retry with the same Idempotency-Key to learn the outcome", c.timeout)}
	case errors.Is(err, context.Canceled):
		return Reply{}, false, err
	case err != nil:
		return Reply{}, false, &Error{Code: CodeWriterUnavailable, Detail: "cannot reach the wallet writer: " + err.Error()}
	}
	var r Reply
	if err := json.Unmarshal(resp.Data, &r); err != nil || (r.Result == nil) == (r.Error == nil) {
		return Reply{}, false, fmt.Errorf("malformed reply from writer (%s): %q", resp.Header.Get(micro.ErrorHeader), resp.Data)
	}
	return r, resp.Header.Get(ReplayedHeader) == "true", nil
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

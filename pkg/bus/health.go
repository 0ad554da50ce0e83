package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// WriterHealth is what a writer tells of itself in its service stats
// ($SRV.STATS.wallet_writer): its partition, whether it serves it, and how
// far behind its committer, its Redis projection and its outbox are.
type WriterHealth struct {
	Partition             string `json:"partition"`
	Serving               bool   `json:"serving"`
	QueueDepth            int    `json:"queue_depth"`
	ProjectionLagVersions int64  `json:"projection_lag_versions"`
	ProjectionLagStreams  int    `json:"projection_lag_streams"`
	OutboxLagEvents       int64  `json:"outbox_lag_events"`
}

// WriterHealth asks every writer for its health and returns the answers
// that come within wait (at most ctx's deadline), one per writer, in no
// particular order.
func (c *Client) WriterHealth(ctx context.Context, wait time.Duration) ([]WriterHealth, error) {
	inbox := c.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("writer health: %w", err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // gone with the connection otherwise
	subject, err := micro.ControlSubject(micro.StatsVerb, WriterService, "")
	if err != nil {
		return nil, err
	}
	if err := c.nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("writer health: %w", err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var out []WriterHealth
	for {
		select {
		case msg := <-replies:
			var st micro.Stats
			if json.Unmarshal(msg.Data, &st) != nil {
				continue
			}
			for _, ep := range st.Endpoints {
				var h WriterHealth
				if ep != nil && json.Unmarshal(ep.Data, &h) == nil {
					out = append(out, h)
				}
			}
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

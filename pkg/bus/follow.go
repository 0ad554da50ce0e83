package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Delivered is one event as the stream EVENTS holds it: its sequence there
// and the envelope's JSON.
type Delivered struct {
	Seq  uint64
	Data []byte
}

// followBuffer bounds what one follower holds: the client library's pull
// buffer and the channel to the reader each keep at most this many events,
// so a slow reader costs bounded memory and JetStream waits for it.
const followBuffer = 32

// FollowNew, as Follow's after, starts with the first event published from
// now on.
const FollowNew = ^uint64(0)

// Follow delivers, in stream order, the events of EVENTS on subjects whose
// sequence is after after (0: from the first the stream holds; FollowNew:
// none of those it holds now), then every
// new one as it comes, on the returned channel, until ctx ends or the
// stream cannot be read; then the channel is closed. It is an ordered
// consumer of its own (ephemeral, recreated by the client library across a
// NATS restart, without a gap or a repeat), never a poll.
func (c *Client) Follow(ctx context.Context, subjects []string, after uint64) (<-chan Delivered, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch after {
	case 0:
	case FollowNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	default:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := js.OrderedConsumer(ctx, EventsStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("follow %v: %w", subjects, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(followBuffer))
	if err != nil {
		return nil, fmt.Errorf("follow %v: %w", subjects, err)
	}
	out := make(chan Delivered, followBuffer)
	go func() {
		<-ctx.Done()
		it.Stop() // ends Next below
	}()
	go func() {
		defer close(out)
		for {
			msg, err := it.Next()
			if err != nil {
				return
			}
			meta, err := msg.Metadata()
			if err != nil {
				return
			}
			select {
			case out <- Delivered{Seq: meta.Sequence.Stream, Data: msg.Data()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

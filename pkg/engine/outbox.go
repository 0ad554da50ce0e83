package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"coffer/pkg/bus"
	"coffer/pkg/event"
)

// outboxBatch is how many events one pass sends before it waits for acks.
const outboxBatch = 256

// publishOutbox sends committed events to the EVENTS stream in log order,
// each with Nats-Msg-Id = event id, and advances the watermark in SQLite only
// past events JetStream acknowledged. After a crash it resumes from the
// watermark; anything sent twice is dropped by JetStream's duplicate window
// or by the history writer's idempotent insert. When ctx ends it makes one
// last bounded pass, so a clean stop leaves nothing unpublished.
//
// Committed batches normally arrive in memory from the finisher and are sent
// as they are; the log is read only to catch up (at start, after a failure,
// or when the outbox fell behind and the finisher dropped a batch).
func (w *Writer) publishOutbox(ctx context.Context) {
	o := &outbox{w: w}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	var fed []event.Envelope
	for ctx.Err() == nil {
		var err error
		if fed != nil && o.haveWM && o.streamReady && len(fed) > 0 && fed[0].Seq <= o.wm+1 {
			err = o.publishFed(ctx, fed)
		} else {
			err = o.drain(ctx)
		}
		fed = nil
		if o.haveWM {
			w.publishedSeq.Store(o.wm)
		}
		wait, feed := time.Second, w.feed
		if err != nil {
			wait, feed = backoff.next(), nil // the log has everything the feed would bring
			if ctx.Err() == nil {
				w.log.Warn("outbox cannot publish yet", "watermark", o.wm, "retry_in", wait.String(), "err", err)
			}
		} else {
			backoff.reset()
		}
		select {
		case <-ctx.Done():
		case fed = <-feed:
		case <-time.After(wait):
		}
	}
	final, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := o.drain(final)
	if o.haveWM {
		err = errors.Join(err, o.save(final, true))
	}
	if err != nil {
		w.log.Warn("outbox not drained at stop; the next start publishes the rest", "watermark", o.wm, "err", err)
	}
}

// outbox is the publisher's memory between passes.
type outbox struct {
	w           *Writer
	wm          int64 // seq of the last event JetStream acknowledged
	saved       int64 // the watermark as last written to SQLite
	savedAt     time.Time
	haveWM      bool
	streamReady bool
}

// drain publishes everything after the watermark.
func (o *outbox) drain(ctx context.Context) error {
	if !o.haveWM {
		v, err := o.w.store.OutboxWatermark(ctx)
		if err != nil {
			return err
		}
		o.wm, o.saved, o.haveWM = v, v, true
	}
	if !o.streamReady {
		if _, err := bus.EnsureStream(ctx, o.w.js, bus.EventsStreamConfig(o.w.cfg.Replicas)); err != nil {
			return fmt.Errorf("ensure stream %s: %w", bus.EventsStream, err)
		}
		o.streamReady = true
	}
	for {
		next, n, err := o.w.publishFrom(ctx, o.wm)
		o.wm = max(o.wm, next)
		if err != nil {
			o.streamReady = false // it may have gone with JetStream's store
			return errors.Join(err, o.save(ctx, true))
		}
		if n < outboxBatch {
			return o.save(ctx, ctx.Err() != nil)
		}
	}
}

// save records the watermark in SQLite, at most once a second unless forced:
// every save is a durable commit that would compete with the committer's, and
// a watermark that lags only means a few events are published again after a
// crash, which JetStream and the history writer drop as duplicates.
func (o *outbox) save(ctx context.Context, force bool) error {
	if o.wm == o.saved || (!force && time.Since(o.savedAt) < time.Second) {
		return nil
	}
	if err := o.w.store.SetOutboxWatermark(context.WithoutCancel(ctx), o.wm); err != nil {
		return err
	}
	o.saved, o.savedAt = o.wm, time.Now()
	return nil
}

// publishFed sends a committed batch handed over in memory, skipping what is
// already published.
func (o *outbox) publishFed(ctx context.Context, evs []event.Envelope) error {
	for len(evs) > 0 && evs[0].Seq <= o.wm {
		evs = evs[1:]
	}
	next, err := o.w.publishEvents(ctx, o.wm, evs)
	o.wm = max(o.wm, next)
	if err != nil {
		o.streamReady = false
		return errors.Join(err, o.save(ctx, true))
	}
	return o.save(ctx, false)
}

// publishFrom sends up to outboxBatch events after wm and returns the seq of
// the last one JetStream acknowledged in an unbroken run (wm if none), and how
// many events it read.
func (w *Writer) publishFrom(ctx context.Context, wm int64) (int64, int, error) {
	evs, err := w.store.EventsAfter(ctx, wm, outboxBatch)
	if err != nil || len(evs) == 0 {
		return wm, 0, err
	}
	last, err := w.publishEvents(ctx, wm, evs)
	return last, len(evs), err
}

// publishEvents sends evs, in order, and returns the seq of the last one
// JetStream acknowledged in an unbroken run from the first (wm if none).
func (w *Writer) publishEvents(ctx context.Context, wm int64, evs []event.Envelope) (int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	var sendErr error
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			return wm, fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		msg := nats.NewMsg(bus.EventSubject(e.Domain, e.StreamID, e.Type))
		msg.Data = data
		f, err := w.js.PublishMsgAsync(msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(bus.EventsStream))
		if err != nil {
			sendErr = fmt.Errorf("publish event %s: %w", e.ID, err)
			break
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	last := wm
	for i, f := range futures {
		select {
		case <-f.Ok():
			last = evs[i].Seq
		case err := <-f.Err():
			return last, fmt.Errorf("publish event %s: %w", evs[i].ID, err)
		case <-timeout.C:
			return last, fmt.Errorf("publish event %s: no ack within 5s", evs[i].ID)
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
	return last, sendErr
}

// backoff doubles a delay from min up to max.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/metrics"
	"coffer/pkg/wallet"
)

// ManagerConsumer is the durable JetStream consumer every process manager
// shares: each transfer event goes to one of them, and comes back to
// another after AckWait if the one that had it died.
const ManagerConsumer = "transfers"

// Sender sends a command and returns its reply (bus.Client does).
type Sender interface {
	Send(ctx context.Context, domain, id, action string, cmd bus.Command) (bus.Reply, bool, error)
}

// Manager is the transfers' process manager: a durable consumer of
// evt.transfer.> that answers each step with the next command. It keeps
// nothing of its own: each event carries what the next step needs, and
// each command goes under a key derived from the transfer id (Key), so
// that an event delivered twice, or to two managers at once, applies each
// step once and learns the same outcome each time.
type Manager struct {
	js       jetstream.JetStream
	send     Sender
	log      *slog.Logger
	workers  int
	replicas int

	consuming atomic.Bool
	steps     *prometheus.CounterVec
}

// NewManager returns a manager that works on up to workers events at a
// time, sending commands with send; replicas is how many JetStream servers
// keep EVENTS when the manager creates it.
func NewManager(nc *nats.Conn, send Sender, log *slog.Logger, workers, replicas int) (*Manager, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Manager{js: js, send: send, log: log, workers: max(1, workers), replicas: replicas,
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "transfer_steps_total",
			Help:      "Transfer events the process manager handled, by step and outcome: done (the next command answered and recorded, or nothing to do), retry (a writer could not be reached: redelivered later).",
		}, []string{"step", "outcome"}),
	}, nil
}

// RegisterMetrics adds the manager's metrics to reg.
func (m *Manager) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(m.steps)
}

// ConsumingProbe fails while the manager has no consumer.
func (m *Manager) ConsumingProbe(context.Context) error {
	if !m.consuming.Load() {
		return errors.New("the transfer process manager has no consumer on the events stream yet")
	}
	return nil
}

// ackWait is how long an event a manager took stays its own without news
// of it: a manager tells JetStream it is still at work before each command
// of a step (each bounded by the Sender's timeout, shorter than this), so
// only a manager that died, or froze, loses its events, which then go to
// another this long after.
const ackWait = 10 * time.Second

// Run handles transfer events until ctx ends, (re)creating the stream and
// the consumer whenever they are missing and retrying every failure. The
// events it holds when ctx ends are finished first.
func (m *Manager) Run(ctx context.Context) error {
	slots := make(chan struct{}, m.workers) // one per event in hand
	var wg sync.WaitGroup
	defer wg.Wait()
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		err := m.consume(ctx, slots, &wg)
		if ctx.Err() != nil {
			return nil
		}
		m.consuming.Store(false)
		wait = bus.RetryWait(wait)
		m.log.Warn("transfer manager lost its consumer; starting over", "retry_in", wait.String(), "err", err)
	}
}

// consume takes events as they come, each to a worker of its own as soon
// as one is free, until ctx ends or the consumer fails.
func (m *Manager) consume(ctx context.Context, slots chan struct{}, wg *sync.WaitGroup) error {
	cons, err := m.ensure(ctx)
	if err != nil {
		return err
	}
	// The client keeps as many events at hand as there are workers, so
	// that each free worker has the next one at once.
	it, err := cons.Messages(jetstream.PullMaxMessages(m.workers))
	if err != nil {
		return err
	}
	defer it.Stop()
	m.consuming.Store(true)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-slots
			return err
		}
		wg.Go(func() {
			defer func() { <-slots }()
			m.handle(context.WithoutCancel(ctx), msg)
		})
	}
}

func (m *Manager) ensure(ctx context.Context) (jetstream.Consumer, error) {
	if _, err := bus.EnsureStream(ctx, m.js, bus.EventsStreamConfig(m.replicas)); err != nil {
		return nil, fmt.Errorf("ensure stream: %w", err)
	}
	return bus.EnsureConsumer(ctx, m.js, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       ManagerConsumer,
		Description:   "the transfers' process manager, in every wallet_writer",
		FilterSubject: bus.EventSubject(Name, "*", "*"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 4096,
	})
}

// handle takes one event's step and acknowledges it, or asks for it again
// later when a writer could not be reached.
func (m *Manager) handle(ctx context.Context, msg jetstream.Msg) {
	var env event.Envelope
	var e Event
	err := json.Unmarshal(msg.Data(), &env)
	if err == nil {
		e, err = Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
	}
	if err != nil || env.Domain != Name {
		// Nothing can come of it: say so, and do not let it come back.
		m.log.Error("transfer manager drops a message that is not a transfer event", "subject", msg.Subject(), "err", err)
		msg.Term() //nolint:errcheck // a lost term is a redelivery, dropped again
		return
	}
	// Each command of the step tells JetStream the manager is still at it.
	progress := func() { msg.InProgress() } //nolint:errcheck // at worst the event goes to another manager too, which repeats nothing
	err = m.step(ctx, progress, env.StreamID, e)
	if err != nil {
		n := uint64(1)
		if meta, merr := msg.Metadata(); merr == nil {
			n = meta.NumDelivered
		}
		delay := min(100*time.Millisecond<<min(n-1, 5), 2*time.Second)
		m.log.Warn("transfer step will be retried", "transfer_id", env.StreamID, "step", e.Step, "delivery", n, "retry_in", delay.String(), "err", err)
		m.steps.WithLabelValues(string(e.Step), "retry").Inc()
		msg.NakWithDelay(delay) //nolint:errcheck // without the nak, AckWait brings it back
		return
	}
	m.steps.WithLabelValues(string(e.Step), "done").Inc()
	msg.Ack() //nolint:errcheck // a lost ack is a redelivery, which repeats nothing
}

// Key is the idempotency key of a transfer's step: the same for every
// attempt at it, whoever makes it.
func Key(id, step string) string { return "transfer:" + id + ":" + step }

// errRetry marks an outcome that is not one: the command may not have been
// decided, so the step must be taken again.
var errRetry = errors.New("no outcome yet")

// step sends the command that follows e on transfer id, and records its
// outcome on the transfer.
func (m *Manager) step(ctx context.Context, progress func(), id string, e Event) error {
	switch e.Step {
	case Requested:
		data, _ := json.Marshal(wallet.HoldData{HoldID: wallet.TransferHoldID(id), Amount: e.Amount, TransferID: id})
		refusal, err := m.command(ctx, progress, wallet.Name, e.From, string(wallet.PlaceHold), Key(id, "hold"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			return m.record(ctx, progress, id, Failed, string(refusal.Code))
		}
		return m.record(ctx, progress, id, Held, "")
	case Held:
		data, _ := json.Marshal(wallet.LegData{TransferID: id, Counterpart: e.From, Amount: e.Amount})
		refusal, err := m.command(ctx, progress, wallet.Name, e.To, string(wallet.TransferIn), Key(id, "credit"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			return m.record(ctx, progress, id, CreditRefused, string(refusal.Code))
		}
		return m.record(ctx, progress, id, Credited, "")
	case Credited:
		data, _ := json.Marshal(wallet.LegData{TransferID: id, Counterpart: e.To})
		refusal, err := m.command(ctx, progress, wallet.Name, e.From, string(wallet.TransferOut), Key(id, "capture"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			// Only its transfer ends its hold, and never twice: this is a
			// broken log, for verify and people to see, not to go past.
			m.log.Error("a credited transfer cannot capture its hold", "transfer_id", id, "from", e.From, "refusal", refusal.Error())
			return fmt.Errorf("capture refused: %s: %w", refusal.Code, errRetry)
		}
		return m.record(ctx, progress, id, Completed, "")
	case CreditRefused:
		data, _ := json.Marshal(wallet.HoldData{HoldID: wallet.TransferHoldID(id), TransferID: id})
		refusal, err := m.command(ctx, progress, wallet.Name, e.From, string(wallet.VoidHold), Key(id, "void"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil && refusal.Code != bus.CodeHoldNotActive:
			m.log.Error("a refused transfer cannot void its hold", "transfer_id", id, "from", e.From, "refusal", refusal.Error())
			return fmt.Errorf("void refused: %s: %w", refusal.Code, errRetry)
		}
		return m.record(ctx, progress, id, Failed, e.Code)
	case ReversalRequested:
		// The reversal is a transfer of its own, the other way.
		data, _ := json.Marshal(RequestData{From: e.To, To: e.From, Amount: e.Amount, Reference: "reversal of " + id, ReversalOf: id})
		refusal, err := m.command(ctx, progress, Name, e.ReversalID, string(Request), Key(id, "reverse"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			m.log.Error("a reversal cannot be requested", "transfer_id", id, "reversal_id", e.ReversalID, "refusal", refusal.Error())
			return fmt.Errorf("reversal refused: %s: %w", refusal.Code, errRetry)
		}
		return nil
	case Completed, Failed:
		if e.ReversalOf == "" {
			return nil // nothing follows
		}
		// A reversal ended: the transfer it reverses records how.
		st, code := Reversed, ""
		if e.Step == Failed {
			st, code = ReversalFailed, e.Code
		}
		data, _ := json.Marshal(RecordData{Step: st, Code: code, ReversalID: id})
		refusal, err := m.command(ctx, progress, Name, e.ReversalOf, string(Record), Key(id, "reversal_of"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			m.log.Error("the reversed transfer refuses the end of its reversal", "transfer_id", e.ReversalOf, "reversal_id", id, "refusal", refusal.Error())
			return fmt.Errorf("record %s refused: %s: %w", st, refusal.Code, errRetry)
		}
	}
	return nil
}

// record sends the step taken to the transfer.
func (m *Manager) record(ctx context.Context, progress func(), id string, st Step, code string) error {
	data, _ := json.Marshal(RecordData{Step: st, Code: code})
	refusal, err := m.command(ctx, progress, Name, id, string(Record), Key(id, string(st)), data)
	if err != nil {
		return err
	}
	if refusal != nil {
		m.log.Error("the transfer refuses a step", "transfer_id", id, "step", st, "refusal", refusal.Error())
		return fmt.Errorf("record %s refused: %s: %w", st, refusal.Code, errRetry)
	}
	return nil
}

// command sends one command and returns its refusal, if the writer decided
// one; err is set when there is no decision to go by (a writer that cannot
// be reached, or one that is overloaded or failing), to try again.
func (m *Manager) command(ctx context.Context, progress func(), domain, id, action, key string, data []byte) (*bus.Error, error) {
	progress()
	reply, _, err := m.send.Send(ctx, domain, id, action, bus.Command{CommandID: ksuid.New().String(), IdempotencyKey: key, Data: data})
	if err != nil {
		return nil, fmt.Errorf("%s %s.%s: %w", action, domain, id, err)
	}
	if r := reply.Error; r != nil {
		switch r.Code {
		case bus.CodeWriterUnavailable, bus.CodeWriterTimeout, bus.CodeOverloaded, bus.CodeStorageUnavailable, bus.CodeInternal:
			return nil, fmt.Errorf("%s %s.%s: %w: %s", action, domain, id, errRetry, r.Error())
		}
		return r, nil
	}
	return nil, nil
}

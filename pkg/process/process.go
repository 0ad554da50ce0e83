// Package process runs process managers: work that spans streams (a
// transfer between two wallets, an order that takes stock and money) as a
// chain of single-stream commands, each sent in answer to an event. A
// Manager is a durable JetStream consumer shared by every process that
// runs one (each event goes to one of them, and to another after AckWait
// if the one that had it died), and a handler that takes an event's step.
// It keeps nothing of its own: each event carries what the next step needs,
// and each command goes under an idempotency key derived from the
// operation's id, so that an event delivered twice, or to two managers at
// once, applies each step once and learns the same outcome each time.
package process

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
)

// Sender sends a command and returns its reply (bus.Client does).
type Sender interface {
	Send(ctx context.Context, domain, id, action string, cmd bus.Command) (bus.Reply, bool, error)
}

// Handler takes the step that follows one event, sending its commands with
// c. It returns the step's name, for the metrics, and an error when the
// step must be taken again later (ErrRetry, or a writer out of reach).
type Handler func(ctx context.Context, c *Commands, env event.Envelope) (step string, err error)

// Config describes a manager.
type Config struct {
	// Name names the durable consumer and the metric
	// coffer_<Name>_steps_total ("transfer" → "transfers" and
	// coffer_transfer_steps_total).
	Name        string
	Consumer    string
	Description string
	// Subjects are the event subjects it takes.
	Subjects []string
	// Workers is how many events it works on at once; Replicas how many
	// JetStream servers keep EVENTS when it creates it.
	Workers, Replicas int
	Handle            Handler
}

// Manager consumes events and takes each one's step.
type Manager struct {
	cfg  Config
	js   jetstream.JetStream
	send Sender
	log  *slog.Logger

	consuming atomic.Bool
	steps     *prometheus.CounterVec
}

// New returns a manager of cfg that sends commands with send.
func New(nc *nats.Conn, send Sender, log *slog.Logger, cfg Config) (*Manager, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cfg.Workers = max(1, cfg.Workers)
	return &Manager{cfg: cfg, js: js, send: send, log: log,
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      cfg.Name + "_steps_total",
			Help:      "Events the " + cfg.Name + "s' process manager handled, by step and outcome: done (the next command answered and recorded, or nothing to do), retry (a writer could not be reached: redelivered later).",
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
		return fmt.Errorf("the %s process manager has no consumer on the events stream yet", m.cfg.Name)
	}
	return nil
}

// AckWait is how long an event a manager took stays its own without news
// of it: a manager tells JetStream it is still at work before each command
// of a step (each bounded by the Sender's timeout, shorter than this), so
// only a manager that died, or froze, loses its events, which then go to
// another this long after.
const AckWait = 10 * time.Second

// Run handles events until ctx ends, (re)creating the stream and the
// consumer whenever they are missing and retrying every failure. The
// events it holds when ctx ends are finished first.
func (m *Manager) Run(ctx context.Context) error {
	slots := make(chan struct{}, m.cfg.Workers) // one per event in hand
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
		m.log.Warn(m.cfg.Name+" manager lost its consumer; starting over", "retry_in", wait.String(), "err", err)
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
	it, err := cons.Messages(jetstream.PullMaxMessages(m.cfg.Workers))
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
	if _, err := bus.EnsureStream(ctx, m.js, bus.EventsStreamConfig(m.cfg.Replicas)); err != nil {
		return nil, fmt.Errorf("ensure stream: %w", err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       m.cfg.Consumer,
		Description:   m.cfg.Description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxAckPending: 4096,
	}
	if len(m.cfg.Subjects) == 1 {
		cc.FilterSubject = m.cfg.Subjects[0]
	} else {
		cc.FilterSubjects = m.cfg.Subjects
	}
	return bus.EnsureConsumer(ctx, m.js, bus.EventsStream, cc)
}

// handle takes one event's step and acknowledges it, or asks for it again
// later when a writer could not be reached.
func (m *Manager) handle(ctx context.Context, msg jetstream.Msg) {
	var env event.Envelope
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		m.drop(msg, err)
		return
	}
	// Each command of the step tells JetStream the manager is still at it.
	c := &Commands{send: m.send, progress: func() { msg.InProgress() }} //nolint:errcheck // at worst the event goes to another manager too, which repeats nothing
	step, err := m.cfg.Handle(ctx, c, env)
	switch {
	case errors.Is(err, ErrUnreadable):
		m.drop(msg, err)
		return
	case err != nil:
		n := uint64(1)
		if meta, merr := msg.Metadata(); merr == nil {
			n = meta.NumDelivered
		}
		delay := min(100*time.Millisecond<<min(n-1, 5), 2*time.Second)
		m.log.Warn(m.cfg.Name+" step will be retried", "domain", env.Domain, "id", env.StreamID, "step", step, "delivery", n, "retry_in", delay.String(), "err", err)
		m.steps.WithLabelValues(step, "retry").Inc()
		msg.NakWithDelay(delay) //nolint:errcheck // without the nak, AckWait brings it back
		return
	}
	m.steps.WithLabelValues(step, "done").Inc()
	msg.Ack() //nolint:errcheck // a lost ack is a redelivery, which repeats nothing
}

// drop ends a message nothing can come of, so that it does not come back.
func (m *Manager) drop(msg jetstream.Msg, err error) {
	m.log.Error(m.cfg.Name+" manager drops a message it cannot read", "subject", msg.Subject(), "err", err)
	msg.Term() //nolint:errcheck // a lost term is a redelivery, dropped again
}

// ErrUnreadable marks an event a handler cannot read: it is dropped, not
// retried.
var ErrUnreadable = errors.New("not an event this manager reads")

// ErrRetry marks an outcome that is not one: the command may not have been
// decided, or was refused where the log says it cannot be, so the step
// must be taken again.
var ErrRetry = errors.New("no outcome yet")

// Commands sends the commands of one event's step.
type Commands struct {
	send     Sender
	progress func()
}

// Send sends one command under key and returns its refusal, if the writer
// decided one; err is set when there is no decision to go by (a writer that
// cannot be reached, or one that is overloaded or failing), to try again.
func (c *Commands) Send(ctx context.Context, domain, id, action, key string, data []byte) (*bus.Error, error) {
	_, refusal, err := c.Result(ctx, domain, id, action, key, data)
	return refusal, err
}

// Result is Send that also returns the result of a command that was not
// refused.
func (c *Commands) Result(ctx context.Context, domain, id, action, key string, data []byte) (json.RawMessage, *bus.Error, error) {
	c.progress()
	reply, _, err := c.send.Send(ctx, domain, id, action, bus.Command{CommandID: ksuid.New().String(), IdempotencyKey: key, Data: data})
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s.%s: %w", action, domain, id, err)
	}
	if r := reply.Error; r != nil {
		switch r.Code {
		case bus.CodeWriterUnavailable, bus.CodeWriterTimeout, bus.CodeOverloaded, bus.CodeStorageUnavailable, bus.CodeInternal:
			return nil, nil, fmt.Errorf("%s %s.%s: %w: %s", action, domain, id, ErrRetry, r.Error())
		}
		return nil, r, nil
	}
	return reply.Result, nil, nil
}

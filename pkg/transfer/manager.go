package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/process"
	"coffer/pkg/wallet"
)

// ManagerConsumer is the durable JetStream consumer every transfers'
// process manager shares.
const ManagerConsumer = "transfers"

// NewManager returns the transfers' process manager (package process): a
// durable consumer of evt.transfer.> that answers each step with the next
// command, working on up to workers events at a time and sending commands
// with send; replicas is how many JetStream servers keep EVENTS when the
// manager creates it.
func NewManager(nc *nats.Conn, send process.Sender, log *slog.Logger, workers, replicas int) (*process.Manager, error) {
	return process.New(nc, send, log, process.Config{
		Name:        Name,
		Consumer:    ManagerConsumer,
		Description: "the transfers' process manager, in every wallet_writer",
		Subjects:    []string{bus.EventSubject(Name, "*", "*")},
		Workers:     workers,
		Replicas:    replicas,
		Handle: func(ctx context.Context, c *process.Commands, env event.Envelope) (string, error) {
			return manager{c: c, log: log}.handle(ctx, env)
		},
	})
}

// manager takes the steps of one transfer event.
type manager struct {
	c   *process.Commands
	log *slog.Logger
}

// handle takes the step that follows a transfer event.
func (m manager) handle(ctx context.Context, env event.Envelope) (string, error) {
	e, err := Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
	if err != nil || env.Domain != Name {
		return env.Type, fmt.Errorf("%s %s: %w: %v", env.Domain, env.StreamID, process.ErrUnreadable, err)
	}
	return string(e.Step), m.step(ctx, env.StreamID, e)
}

// Key is the idempotency key of a transfer's step: the same for every
// attempt at it, whoever makes it.
func Key(id, step string) string { return "transfer:" + id + ":" + step }

// step sends the command that follows e on transfer id, and records its
// outcome on the transfer.
func (m manager) step(ctx context.Context, id string, e Event) error {
	switch e.Step {
	case Requested:
		data, _ := json.Marshal(wallet.HoldData{HoldID: wallet.TransferHoldID(id), Amount: e.Amount, TransferID: id})
		refusal, err := m.c.Send(ctx, wallet.Name, e.From, string(wallet.PlaceHold), Key(id, "hold"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			return m.record(ctx, id, Failed, string(refusal.Code))
		}
		return m.record(ctx, id, Held, "")
	case Held:
		data, _ := json.Marshal(wallet.LegData{TransferID: id, Counterpart: e.From, Amount: e.Amount, OrderID: e.OrderID})
		refusal, err := m.c.Send(ctx, wallet.Name, e.To, string(wallet.TransferIn), Key(id, "credit"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			return m.record(ctx, id, CreditRefused, string(refusal.Code))
		}
		return m.record(ctx, id, Credited, "")
	case Credited:
		data, _ := json.Marshal(wallet.LegData{TransferID: id, Counterpart: e.To, OrderID: e.OrderID})
		refusal, err := m.c.Send(ctx, wallet.Name, e.From, string(wallet.TransferOut), Key(id, "capture"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			// Only its transfer ends its hold, and never twice: this is a
			// broken log, for verify and people to see, not to go past.
			m.log.Error("a credited transfer cannot capture its hold", "transfer_id", id, "from", e.From, "refusal", refusal.Error())
			return fmt.Errorf("capture refused: %s: %w", refusal.Code, process.ErrRetry)
		}
		return m.record(ctx, id, Completed, "")
	case CreditRefused:
		data, _ := json.Marshal(wallet.HoldData{HoldID: wallet.TransferHoldID(id), TransferID: id})
		refusal, err := m.c.Send(ctx, wallet.Name, e.From, string(wallet.VoidHold), Key(id, "void"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil && refusal.Code != bus.CodeHoldNotActive:
			m.log.Error("a refused transfer cannot void its hold", "transfer_id", id, "from", e.From, "refusal", refusal.Error())
			return fmt.Errorf("void refused: %s: %w", refusal.Code, process.ErrRetry)
		}
		return m.record(ctx, id, Failed, e.Code)
	case ReversalRequested:
		// The reversal is a transfer of its own, the other way.
		data, _ := json.Marshal(RequestData{From: e.To, To: e.From, Amount: e.Amount, Reference: "reversal of " + id, ReversalOf: id})
		refusal, err := m.c.Send(ctx, Name, e.ReversalID, string(Request), Key(id, "reverse"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			m.log.Error("a reversal cannot be requested", "transfer_id", id, "reversal_id", e.ReversalID, "refusal", refusal.Error())
			return fmt.Errorf("reversal refused: %s: %w", refusal.Code, process.ErrRetry)
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
		refusal, err := m.c.Send(ctx, Name, e.ReversalOf, string(Record), Key(id, "reversal_of"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			m.log.Error("the reversed transfer refuses the end of its reversal", "transfer_id", e.ReversalOf, "reversal_id", id, "refusal", refusal.Error())
			return fmt.Errorf("record %s refused: %s: %w", st, refusal.Code, process.ErrRetry)
		}
	}
	return nil
}

// record sends the step taken to the transfer.
func (m manager) record(ctx context.Context, id string, st Step, code string) error {
	data, _ := json.Marshal(RecordData{Step: st, Code: code})
	refusal, err := m.c.Send(ctx, Name, id, string(Record), Key(id, string(st)), data)
	if err != nil {
		return err
	}
	if refusal != nil {
		m.log.Error("the transfer refuses a step", "transfer_id", id, "step", st, "refusal", refusal.Error())
		return fmt.Errorf("record %s refused: %s: %w", st, refusal.Code, process.ErrRetry)
	}
	return nil
}

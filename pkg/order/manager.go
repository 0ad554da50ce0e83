package order

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/item"
	"coffer/pkg/process"
	"coffer/pkg/transfer"
)

// ManagerConsumer is the durable JetStream consumer every orders' process
// manager shares.
const ManagerConsumer = "orders"

// NewManager returns the orders' process manager (package process): a
// durable consumer of the orders' events, and of the ends of the transfers
// that pay for them, that answers each with the next step, working on up
// to workers events at a time and sending commands with send; replicas is
// how many JetStream servers keep EVENTS when the manager creates it.
func NewManager(nc *nats.Conn, send process.Sender, log *slog.Logger, workers, replicas int) (*process.Manager, error) {
	return process.New(nc, send, log, process.Config{
		Name:        Name,
		Consumer:    ManagerConsumer,
		Description: "the orders' process manager, in every wallet_writer",
		Subjects: []string{
			bus.EventSubject(Name, "*", "*"),
			bus.EventSubject(transfer.Name, "*", string(transfer.Completed)),
			bus.EventSubject(transfer.Name, "*", string(transfer.Failed)),
		},
		Workers:  workers,
		Replicas: replicas,
		Handle: func(ctx context.Context, c *process.Commands, env event.Envelope) (string, error) {
			return manager{c: c, log: log}.handle(ctx, env)
		},
	})
}

// Key is the idempotency key of an order's step: the same for every
// attempt at it, whoever makes it. A step on each of an order's items
// shares one key: each item is a stream of its own.
func Key(id, step string) string { return "order:" + id + ":" + step }

// manager takes the steps of one event.
type manager struct {
	c   *process.Commands
	log *slog.Logger
}

// handle takes the step that follows an order's event, or records how the
// transfer that pays for an order ended.
func (m manager) handle(ctx context.Context, env event.Envelope) (string, error) {
	if env.Domain == transfer.Name {
		e, err := transfer.Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return "transfer_" + env.Type, fmt.Errorf("transfer %s: %w: %v", env.StreamID, process.ErrUnreadable, err)
		}
		if e.OrderID == "" {
			return "transfer_" + env.Type, nil // not a payment
		}
		if e.Step == transfer.Completed {
			return "transfer_" + env.Type, m.record(ctx, e.OrderID, RecordData{Step: Paid, TransferID: env.StreamID})
		}
		return "transfer_" + env.Type, m.record(ctx, e.OrderID, RecordData{Step: PaymentFailed, Code: e.Code})
	}
	e, err := Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
	if err != nil || env.Domain != Name {
		return env.Type, fmt.Errorf("%s %s: %w: %v", env.Domain, env.StreamID, process.ErrUnreadable, err)
	}
	return string(e.Step), m.step(ctx, env.StreamID, e)
}

// step sends the commands that follow e on order id, and records their
// outcome on the order.
func (m manager) step(ctx context.Context, id string, e Event) error {
	switch e.Step {
	case Placed:
		return m.reserve(ctx, id, e)
	case Reserved:
		data, _ := json.Marshal(transfer.RequestData{From: e.Wallet, To: e.Shop, Amount: e.Total, Reference: "order " + id, OrderID: id})
		refusal, err := m.c.Send(ctx, transfer.Name, PaymentID(id), string(transfer.Request), Key(id, "pay"), data)
		switch {
		case err != nil:
			return err
		case refusal != nil:
			// The transfer could not even be asked for: the order fails
			// as if it had been refused.
			m.log.Warn("an order's payment cannot be requested", "order_id", id, "refusal", refusal.Error())
			return m.record(ctx, id, RecordData{Step: PaymentFailed, Code: string(refusal.Code)})
		}
		return nil // the transfer's end comes as an event of its own
	case Paid:
		for _, l := range e.Lines {
			data, _ := json.Marshal(item.ReservationData{OrderID: id})
			refusal, err := m.c.Send(ctx, item.Name, l.ItemID, string(item.Sell), Key(id, "sell"), data)
			if err != nil {
				return err
			}
			if refusal != nil {
				// Only its order ends a reservation, and never twice: this
				// is a broken log, for verify and people to see.
				m.log.Error("a paid order cannot sell what it reserved", "order_id", id, "item_id", l.ItemID, "refusal", refusal.Error())
				return fmt.Errorf("sell refused: %s: %w", refusal.Code, process.ErrRetry)
			}
		}
		return m.record(ctx, id, RecordData{Step: Completed})
	case PaymentFailed:
		if err := m.release(ctx, id, e.Lines); err != nil {
			return err
		}
		return m.record(ctx, id, RecordData{Step: Failed, Code: e.Code})
	}
	return nil // completed and failed: nothing follows
}

// reserve reserves each line on its item in turn, at the item's price,
// and records the priced lines; at the first refusal (out_of_stock, an
// unknown item) it releases what it reserved and records the failure,
// naming the item.
func (m manager) reserve(ctx context.Context, id string, e Event) error {
	priced := make([]LineData, 0, len(e.Lines))
	for _, l := range e.Lines {
		data, _ := json.Marshal(item.ReservationData{OrderID: id, Quantity: l.Quantity})
		res, refusal, err := m.c.Result(ctx, item.Name, l.ItemID, string(item.Reserve), Key(id, "reserve"), data)
		if err != nil {
			return err
		}
		if refusal != nil {
			if err := m.release(ctx, id, linesOf(priced)); err != nil {
				return err
			}
			return m.record(ctx, id, RecordData{Step: Failed, Code: string(refusal.Code), ItemID: l.ItemID})
		}
		var r item.ReservationResult
		if err := json.Unmarshal(res, &r); err != nil || r.Price < 1 || r.Quantity != l.Quantity {
			return fmt.Errorf("reservation of %s for order %s answered %s: %w", l.ItemID, id, res, process.ErrRetry)
		}
		priced = append(priced, LineData{ItemID: l.ItemID, Quantity: l.Quantity, Price: r.Price})
	}
	if _, ok := Total(linesOf(priced)); !ok {
		if err := m.release(ctx, id, linesOf(priced)); err != nil {
			return err
		}
		return m.record(ctx, id, RecordData{Step: Failed, Code: string(bus.CodeInvalidAmount)})
	}
	return m.record(ctx, id, RecordData{Step: Reserved, Lines: priced})
}

// release gives back the reservations of lines; a line with none (it was
// refused, or released before) is fine.
func (m manager) release(ctx context.Context, id string, lines []Line) error {
	for _, l := range lines {
		data, _ := json.Marshal(item.ReservationData{OrderID: id})
		refusal, err := m.c.Send(ctx, item.Name, l.ItemID, string(item.Release), Key(id, "release"), data)
		if err != nil {
			return err
		}
		if refusal != nil && refusal.Code != bus.CodeReservationNotFound {
			m.log.Error("an order cannot release what it reserved", "order_id", id, "item_id", l.ItemID, "refusal", refusal.Error())
			return fmt.Errorf("release refused: %s: %w", refusal.Code, process.ErrRetry)
		}
	}
	return nil
}

// record sends the step taken to the order.
func (m manager) record(ctx context.Context, id string, d RecordData) error {
	data, _ := json.Marshal(d)
	refusal, err := m.c.Send(ctx, Name, id, string(Record), Key(id, string(d.Step)), data)
	if err != nil {
		return err
	}
	if refusal != nil {
		m.log.Error("the order refuses a step", "order_id", id, "step", d.Step, "refusal", refusal.Error())
		return fmt.Errorf("record %s refused: %s: %w", d.Step, refusal.Code, process.ErrRetry)
	}
	return nil
}

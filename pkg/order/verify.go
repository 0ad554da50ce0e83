package order

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/item"
	"coffer/pkg/transfer"
)

// Grace is how long an order may stay pending before Verify counts it as
// stuck: its process manager takes each step in milliseconds, and retries
// one that cannot be taken within seconds.
const Grace = 30 * time.Second

// onItem is what an item's log holds of one order: the units it holds
// reserved now, and the units sold to it (each sale an event).
type onItem struct {
	reserved int64
	sold     []int64
}

// Verify checks orders across the logs of every partition: each completed
// order was paid by its transfer (PaymentID: completed, of the total, from
// the buyer's wallet to the shop's, naming the order) and bought each
// line's units once, holding none reserved; a failed one holds no units and
// bought none, and its payment, if one was asked for, failed; none is
// pending past Grace at now; no item names an order the logs do not hold.
// Each item's units are conserved event by event (item.Check, run by the
// engine's verify); here, in sum too. It prints each problem and a summary
// to out and returns the number of problems.
//
// It reads the orders first and the items and transfers after, so that on
// a live system every step an order records is seen where it was taken.
func Verify(ctx context.Context, logs []*eventstore.Store, now time.Time, out io.Writer) (int, error) {
	orders := map[string]State{}
	if err := eventstore.EachEvent(ctx, logs, Name, func(env event.Envelope) error {
		e, err := Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return fmt.Errorf("order %s v%d: %w", env.StreamID, env.Version, err)
		}
		orders[env.StreamID] = Evolve(orders[env.StreamID], e)
		return nil
	}); err != nil {
		return 0, err
	}
	type key struct{ order, item string }
	held := map[key]*onItem{}
	at := func(k key) *onItem {
		if held[k] == nil {
			held[k] = &onItem{}
		}
		return held[k]
	}
	items := map[string]item.State{}
	if err := eventstore.EachEvent(ctx, logs, item.Name, func(env event.Envelope) error {
		e, err := item.Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return fmt.Errorf("item %s v%d: %w", env.StreamID, env.Version, err)
		}
		items[env.StreamID] = item.Evolve(items[env.StreamID], e)
		if e.Type == item.Sold {
			h := at(key{e.OrderID, env.StreamID})
			h.sold = append(h.sold, e.Quantity)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	var units struct{ initial, restocked, stock, reserved, sold int64 }
	for id, s := range items {
		for o, n := range s.Reservations() {
			at(key{o, id}).reserved = n
		}
		units.initial += s.Initial
		units.restocked += s.Restocked
		units.stock += s.Stock
		units.reserved += s.Reserved
		units.sold += s.Sold
	}
	payments := map[string]transfer.State{}
	if err := eventstore.EachEvent(ctx, logs, transfer.Name, func(env event.Envelope) error {
		e, err := transfer.Domain{}.DecodeEvent(env.Type, env.Schema, env.Version, env.Time, env.Data)
		if err != nil {
			return fmt.Errorf("transfer %s v%d: %w", env.StreamID, env.Version, err)
		}
		if e.OrderID != "" {
			payments[env.StreamID] = transfer.Evolve(payments[env.StreamID], e)
		}
		return nil
	}); err != nil {
		return 0, err
	}

	problems := 0
	problem := func(id, format string, args ...any) {
		problems++
		fmt.Fprintf(out, "MISMATCH order %s: %s\n", id, fmt.Sprintf(format, args...))
	}
	count := map[Status]int{}
	var paid int64
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		s := orders[id]
		count[s.Status()]++
		pay, asked := payments[PaymentID(id)]
		for _, l := range s.Lines {
			h := held[key{id, l.ItemID}]
			if h == nil {
				h = &onItem{}
			}
			delete(held, key{id, l.ItemID})
			switch {
			case s.Status() == StatusCompleted && (len(h.sold) != 1 || h.sold[0] != l.Quantity || h.reserved != 0):
				problem(id, "completed, and item %s sold it %v and holds %d reserved for it; want one sale of %d", l.ItemID, h.sold, h.reserved, l.Quantity)
			case s.Status() == StatusFailed && (len(h.sold) != 0 || h.reserved != 0):
				problem(id, "failed (%s), and item %s sold it %v and holds %d reserved for it; want none", s.Last().Code, l.ItemID, h.sold, h.reserved)
			case s.Status() == StatusPending && len(h.sold) > 1:
				problem(id, "pending, and item %s sold it %v", l.ItemID, h.sold)
			}
		}
		switch s.Status() {
		case StatusCompleted:
			paid += s.Total
			if !asked || pay.Status() != transfer.StatusCompleted || pay.Amount != s.Total || pay.From != s.Wallet || pay.To != s.Shop ||
				pay.OrderID != id || s.TransferID != PaymentID(id) {
				problem(id, "completed for %d from %s to %s, paid by %q: transfer %s is %s, of %d from %s to %s for order %q",
					s.Total, s.Wallet, s.Shop, s.TransferID, PaymentID(id), pay.Status(), pay.Amount, pay.From, pay.To, pay.OrderID)
			}
		case StatusFailed:
			if asked && pay.Status() == transfer.StatusCompleted {
				problem(id, "failed (%s), and its payment %s completed", s.Last().Code, PaymentID(id))
			}
		default:
			if when := time.Unix(0, s.Last().At); now.Sub(when) > Grace {
				problem(id, "pending at %s since %s, more than %s", s.Last().Step, when.Format(time.RFC3339Nano), Grace)
			}
		}
	}
	// What is left was not claimed by any order's line: units reserved
	// for, or sold to, an order that does not name the item.
	for k, h := range held {
		_, known := orders[k.order]
		problem(k.order, "item %s holds %d reserved for it and sold it %v, and it has no such line (order known: %v)", k.item, h.reserved, h.sold, known)
	}
	for id, pay := range payments {
		if _, ok := orders[pay.OrderID]; !ok {
			problem(pay.OrderID, "transfer %s pays for it, and no log holds the order", id)
		}
	}
	if units.initial+units.restocked != units.stock+units.reserved+units.sold {
		problems++
		fmt.Fprintf(out, "MISMATCH units: initial %d + restocked %d != stock %d + reserved %d + sold %d\n",
			units.initial, units.restocked, units.stock, units.reserved, units.sold)
	}
	fmt.Fprintf(out, "%d orders: %d completed, %d failed, %d pending, %d paid in all; %d items: initial %d + restocked %d = stock %d + reserved %d + sold %d: %d problems\n",
		len(orders), count[StatusCompleted], count[StatusFailed], count[StatusPending], paid, len(items),
		units.initial, units.restocked, units.stock, units.reserved, units.sold, problems)
	return problems, nil
}

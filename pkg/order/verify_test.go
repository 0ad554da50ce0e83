package order

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/item"
)

// logOf writes events of the domains, each stream's versions in order, to
// a log of its own.
func logOf(t *testing.T, events ...any) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), eventstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var recs []eventstore.Record
	for i := 0; i < len(events); i += 2 {
		id := events[i].(string)
		var domain, typ string
		var schema int
		var data []byte
		var version int64
		switch e := events[i+1].(type) {
		case Event:
			enc, err := Domain{}.EncodeEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			domain, typ, schema, data, version = Name, enc.Type, enc.Schema, enc.Data, e.Version
		case item.Event:
			enc, err := item.Domain{}.EncodeEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			domain, typ, schema, data, version = item.Name, enc.Type, enc.Schema, enc.Data, e.Version
		}
		recs = append(recs, eventstore.Record{Event: event.Envelope{ID: ksuid.New().String(), Domain: domain, StreamID: id, Version: version,
			Type: typ, Schema: schema, Data: data, Time: t0, CommandID: ksuid.New().String()}, State: []byte(`{}`)})
	}
	if err := s.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return s
}

// Verify finds an order that says it completed while its item sold it
// nothing and no transfer paid for it, and units an item holds for an
// order that does not name it.
func TestVerifyFindsProblems(t *testing.T) {
	const order, other = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAq", "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAr"
	lines := []Line{{ItemID: mug, Quantity: 2, Price: 10}}
	store := logOf(t,
		mug, item.Event{Type: item.Added, Version: 1, At: t0, Name: "mug", Price: 10, Quantity: 5, StockAfter: 5},
		mug, item.Event{Type: item.Reserved, Version: 2, At: t0, Price: 10, Quantity: 1, StockAfter: 4, OrderID: other},
		order, Event{Step: Placed, Version: 1, At: t0, Wallet: buyer, Shop: shop, Lines: []Line{{ItemID: mug, Quantity: 2}}},
		order, Event{Step: Reserved, Version: 2, At: t0, Wallet: buyer, Shop: shop, Lines: lines, Total: 20},
		order, Event{Step: Paid, Version: 3, At: t0, Wallet: buyer, Shop: shop, Lines: lines, Total: 20, TransferID: PaymentID(order)},
		order, Event{Step: Completed, Version: 4, At: t0, Wallet: buyer, Shop: shop, Lines: lines, Total: 20, TransferID: PaymentID(order)},
	)
	var out bytes.Buffer
	n, err := Verify(context.Background(), []*eventstore.Store{store}, t0, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"completed, and item " + mug + " sold it []", "completed for 20", "item " + mug + " holds 1 reserved for it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verify does not say %q:\n%s", want, out.String())
		}
	}
	if n != 3 {
		t.Fatalf("%d problems, want 3:\n%s", n, out.String())
	}
}

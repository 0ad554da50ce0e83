package item

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"coffer/pkg/bus"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

const (
	orderA = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm"
	orderB = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAn"
)

// given folds cmds into an item, failing on any refusal.
func given(t *testing.T, cmds ...Command) State {
	t.Helper()
	var s State
	for _, c := range cmds {
		e, err := Decide(s, c, t0)
		if err != nil {
			t.Fatalf("given %+v: %v", c, err)
		}
		if err := Check(s, e); err != nil {
			t.Fatalf("given %+v: %v", c, err)
		}
		s = Evolve(s, e)
	}
	return s
}

var mug = Command{Action: Add, Name: "Blue mug", Price: 1250, Stock: 3}

// Given an item, when a command comes, then this event or this refusal.
func TestDecide(t *testing.T) {
	reserved := []Command{mug, {Action: Reserve, OrderID: orderA, Quantity: 2}}
	for _, tc := range []struct {
		name  string
		given []Command
		when  Command
		want  Event
		err   error
	}{
		{"add", nil, mug, Event{Type: Added, Version: 1, Name: "Blue mug", Price: 1250, Quantity: 3, StockAfter: 3}, nil},
		{"add with no stock", nil, Command{Action: Add, Name: "x", Price: 1}, Event{Type: Added, Version: 1, Name: "x", Price: 1}, nil},
		{"add twice", []Command{mug}, mug, Event{}, ErrExists},
		{"add without a name", nil, Command{Action: Add, Price: 1}, Event{}, ErrInvalidName},
		{"add without a price", nil, Command{Action: Add, Name: "x"}, Event{}, ErrInvalidPrice},
		{"add with negative stock", nil, Command{Action: Add, Name: "x", Price: 1, Stock: -1}, Event{}, ErrInvalidStock},
		{"restock", []Command{mug}, Command{Action: Restock, Quantity: 5}, Event{Type: Restocked, Version: 2, Quantity: 5, StockAfter: 8}, nil},
		{"restock nothing", []Command{mug}, Command{Action: Restock}, Event{}, ErrInvalidQuantity},
		{"restock the most at once", []Command{mug}, Command{Action: Restock, Quantity: MaxQuantity}, Event{Type: Restocked, Version: 2, Quantity: MaxQuantity, StockAfter: MaxQuantity + 3}, nil},
		{"restock an unknown item", nil, Command{Action: Restock, Quantity: 1}, Event{}, ErrNotFound},
		{"rename", []Command{mug}, Command{Action: Update, Name: "Red mug"}, Event{Type: Updated, Version: 2, Name: "Red mug", Price: 1250, StockAfter: 3}, nil},
		{"reprice", []Command{mug}, Command{Action: Update, Price: 990}, Event{Type: Updated, Version: 2, Name: "Blue mug", Price: 990, StockAfter: 3}, nil},
		{"update nothing", []Command{mug}, Command{Action: Update}, Event{}, ErrNothingToUpdate},
		{"reserve", []Command{mug}, Command{Action: Reserve, OrderID: orderA, Quantity: 2},
			Event{Type: Reserved, Version: 2, Price: 1250, Quantity: 2, StockAfter: 1, OrderID: orderA}, nil},
		{"reserve all", []Command{mug}, Command{Action: Reserve, OrderID: orderA, Quantity: 3},
			Event{Type: Reserved, Version: 2, Price: 1250, Quantity: 3, StockAfter: 0, OrderID: orderA}, nil},
		{"reserve more than in stock: recorded", reserved, Command{Action: Reserve, OrderID: orderB, Quantity: 2},
			Event{Type: ReservationRejected, Version: 3, Price: 1250, Quantity: 2, StockAfter: 1, OrderID: orderB, Reason: ReasonOutOfStock}, nil},
		{"reserve twice for one order", reserved, Command{Action: Reserve, OrderID: orderA, Quantity: 1}, Event{}, ErrReservationExists},
		{"reserve for no order", []Command{mug}, Command{Action: Reserve, OrderID: "x", Quantity: 1}, Event{}, ErrInvalidOrder},
		{"sell", reserved, Command{Action: Sell, OrderID: orderA},
			Event{Type: Sold, Version: 3, Price: 1250, Quantity: 2, StockAfter: 1, OrderID: orderA}, nil},
		{"release", reserved, Command{Action: Release, OrderID: orderA},
			Event{Type: Released, Version: 3, Quantity: 2, StockAfter: 3, OrderID: orderA}, nil},
		{"sell without a reservation", reserved, Command{Action: Sell, OrderID: orderB}, Event{}, ErrReservationMissing},
		{"release without a reservation", []Command{mug}, Command{Action: Release, OrderID: orderA}, Event{}, ErrReservationMissing},
		{"release with a quantity", reserved, Command{Action: Release, OrderID: orderA, Quantity: 1}, Event{Type: Released, Version: 3, Quantity: 2, StockAfter: 3, OrderID: orderA}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := given(t, tc.given...)
			e, err := Decide(s, tc.when, t0)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			tc.want.At = t0
			if e != tc.want {
				t.Fatalf("event\n got %+v\nwant %+v", e, tc.want)
			}
			if err := Check(s, e); err != nil {
				t.Fatalf("Check of its own decision: %v", err)
			}
		})
	}
}

// Units are conserved through every move, and the reservations add up to
// what is reserved.
func TestUnitsConserved(t *testing.T) {
	s := given(t, mug,
		Command{Action: Reserve, OrderID: orderA, Quantity: 2},
		Command{Action: Restock, Quantity: 4},
		Command{Action: Reserve, OrderID: orderB, Quantity: 5},
		Command{Action: Sell, OrderID: orderA},
		Command{Action: Release, OrderID: orderB},
	)
	if s.Stock != 5 || s.Reserved != 0 || s.Sold != 2 || s.Initial != 3 || s.Restocked != 4 || len(s.Reservations()) != 0 {
		t.Fatalf("after the moves: %+v", s)
	}
	// Check refuses what Decide never makes.
	bad := []Event{
		{Type: Sold, Version: 7, Quantity: 1, OrderID: orderA, StockAfter: 5},                                          // no reservation
		{Type: Reserved, Version: 7, Quantity: 6, OrderID: orderA, StockAfter: -1},                                     // more than in stock
		{Type: Restocked, Version: 7, Quantity: 1, StockAfter: 9},                                                      // stock after is wrong
		{Type: ReservationRejected, Version: 7, Quantity: 1, OrderID: orderA, StockAfter: 5, Reason: ReasonOutOfStock}, // there was stock
		{Type: Restocked, Version: 9, Quantity: 1, StockAfter: 6},                                                      // a version skipped
	}
	for _, e := range bad {
		if Check(s, e) == nil {
			t.Errorf("Check passes %+v", e)
		}
	}
}

// Events and states go through the codec unchanged; anything the codec
// could not have written is refused.
func TestCodec(t *testing.T) {
	d := Domain{}
	var s State
	for _, c := range []Command{mug, {Action: Reserve, OrderID: orderA, Quantity: 1}, {Action: Reserve, OrderID: orderB, Quantity: 9},
		{Action: Update, Price: 5}, {Action: Sell, OrderID: orderA}, {Action: Restock, Quantity: 2}} {
		e, err := Decide(s, c, t0)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := d.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := d.DecodeEvent(enc.Type, enc.Schema, e.Version, t0, enc.Data)
		if err != nil || back != e {
			t.Fatalf("event %+v came back as %+v (%v)", e, back, err)
		}
		s = Evolve(s, e)
		st, err := d.DecodeState(s.Version, d.EncodeState(s))
		if err != nil || !bytes.Equal(d.EncodeState(st), d.EncodeState(s)) {
			t.Fatalf("state %+v came back as %+v (%v)", s, st, err)
		}
	}
	for _, bad := range []struct{ typ, data string }{
		{"added", `{"quantity":1,"stock_after":1}`},                                            // no name
		{"reserved", `{"quantity":1,"stock_after":1}`},                                         // no order
		{"reservation_rejected", `{"quantity":1,"stock_after":1,"order_id":"` + orderA + `"}`}, // no reason
		{"sold", `{"quantity":1,"stock_after":1,"order_id":"` + orderA + `","extra":1}`},       // unknown field
		{"vanished", `{"quantity":1,"stock_after":1}`},
	} {
		if _, err := d.DecodeEvent(bad.typ, SchemaVersion, 2, t0, []byte(bad.data)); err == nil {
			t.Errorf("%s %s decoded", bad.typ, bad.data)
		}
	}
	if _, err := d.DecodeState(3, []byte(`{"name":"x","price":1,"initial":3,"restocked":0,"stock":1,"reserved":0,"sold":1,"created":0}`)); err == nil {
		t.Error("a state whose units do not add up decoded")
	}
}

// Bad input is refused with the API's codes, before anything is decided.
func TestDecodeCommand(t *testing.T) {
	d := Domain{}
	for _, tc := range []struct {
		action, data string
		code         bus.Code
	}{
		{"add", `{"name":"","price":1}`, bus.CodeInvalidName},
		{"add", `{"name":"x","price":0}`, bus.CodeInvalidPrice},
		{"add", `{"name":"x","price":1,"stock":-1}`, bus.CodeInvalidQuantity},
		{"add", `{"name":"x","price":1,"colour":"red"}`, bus.CodeInvalidBody},
		{"restock", `{"quantity":0}`, bus.CodeInvalidQuantity},
		{"reserve", `{"order_id":"x","quantity":1}`, bus.CodeInvalidOrderID},
		{"sell", `{"order_id":"` + orderA + `","quantity":1}`, bus.CodeInvalidBody},
		{"steal", `{}`, bus.CodeNotFound},
	} {
		if _, perr := d.DecodeCommand(tc.action, []byte(tc.data)); perr == nil || perr.Code != tc.code {
			t.Errorf("%s %s: %v, want %s", tc.action, tc.data, perr, tc.code)
		}
	}
	// The answer to a refused reservation names the item and its stock.
	s := given(t, mug)
	e, _ := Decide(s, Command{Action: Reserve, OrderID: orderA, Quantity: 4}, t0)
	a := d.Answer("2Qd2Xb6pRRG2d0lLuY5kVV9ZyAo", e, Evolve(s, e), "ev", t0)
	if a.Refusal == nil || a.Refusal.Code != bus.CodeOutOfStock || !bytes.Contains(a.Refusal.Fields, []byte(`"item_id":"2Qd2Xb6pRRG2d0lLuY5kVV9ZyAo"`)) {
		t.Fatalf("out of stock answer: %+v", a.Refusal)
	}
}

package order

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"coffer/pkg/transfer"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

const (
	buyer = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm"
	shop  = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAn"
	mug   = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAo"
	pot   = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAp"
)

var (
	place  = Command{Action: Place, Wallet: buyer, Shop: shop, Lines: []Line{{ItemID: mug, Quantity: 2}, {ItemID: pot, Quantity: 1}}}
	priced = []Line{{ItemID: mug, Quantity: 2, Price: 1250}, {ItemID: pot, Quantity: 1, Price: 4000}}
)

func given(t *testing.T, cmds ...Command) State {
	t.Helper()
	var s State
	for _, c := range cmds {
		c.At = t0
		e, err := Decide(s, c)
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

func record(st Step) Command { return Command{Action: Record, Step: st} }

// An order's life: each path to its end, and each step out of order
// refused.
func TestLife(t *testing.T) {
	reserved := Command{Action: Record, Step: Reserved, Lines: priced}
	paid := Command{Action: Record, Step: Paid, TransferID: PaymentID("o")}
	completed := given(t, place, reserved, paid, record(Completed))
	if completed.Status() != StatusCompleted || completed.Total != 6500 || completed.TransferID != PaymentID("o") {
		t.Fatalf("completed: %+v", completed)
	}
	outOfStock := given(t, place, Command{Action: Record, Step: Failed, Code: "out_of_stock", ItemID: pot})
	if code, it := outOfStock.Failure(); outOfStock.Status() != StatusFailed || code != "out_of_stock" || it != pot {
		t.Fatalf("failed for stock: %+v", outOfStock)
	}
	unpaid := given(t, place, reserved, Command{Action: Record, Step: PaymentFailed, Code: "insufficient_funds"},
		Command{Action: Record, Step: Failed, Code: "insufficient_funds"})
	if unpaid.Status() != StatusFailed || unpaid.Total != 6500 {
		t.Fatalf("failed for funds: %+v", unpaid)
	}
	for _, tc := range []struct {
		name  string
		given []Command
		when  Command
		err   error
	}{
		{"place twice", []Command{place}, place, ErrExists},
		{"record on no order", nil, record(Completed), ErrNotFound},
		{"complete before paid", []Command{place, reserved}, record(Completed), ErrOutOfOrder},
		{"pay before reserved", []Command{place}, paid, ErrOutOfOrder},
		{"anything after completed", []Command{place, reserved, paid, record(Completed)}, record(Failed), ErrOutOfOrder},
		{"reserved with other lines", []Command{place}, Command{Action: Record, Step: Reserved, Lines: priced[:1]}, ErrInvalidRecord},
		{"reserved unpriced", []Command{place}, Command{Action: Record, Step: Reserved, Lines: place.Lines}, ErrInvalidRecord},
		{"failed without a code", []Command{place}, record(Failed), ErrInvalidRecord},
		{"paid without a transfer", []Command{place, reserved}, record(Paid), ErrInvalidRecord},
		{"the shop buys", nil, Command{Action: Place, Wallet: shop, Shop: shop, Lines: place.Lines}, ErrSameWallet},
		{"no lines", nil, Command{Action: Place, Wallet: buyer, Shop: shop}, ErrInvalidLines},
		{"an item twice", nil, Command{Action: Place, Wallet: buyer, Shop: shop, Lines: []Line{{ItemID: mug, Quantity: 1}, {ItemID: mug, Quantity: 1}}}, ErrInvalidLines},
		{"no quantity", nil, Command{Action: Place, Wallet: buyer, Shop: shop, Lines: []Line{{ItemID: mug}}}, ErrInvalidLines},
		{"a bad wallet", nil, Command{Action: Place, Wallet: "x", Shop: shop, Lines: place.Lines}, ErrInvalidWallet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.when
			c.At = t0
			if _, err := Decide(given(t, tc.given...), c); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// A total past what one transfer may move is refused where the lines are
// priced.
func TestTotalBound(t *testing.T) {
	lines := []Line{{ItemID: mug, Quantity: 1_000_000_000, Price: 1_000_000_000_000}}
	if _, ok := Total(lines); ok {
		t.Fatal("a total of 10^21 passed")
	}
	if n, ok := Total(priced); !ok || n != 6500 {
		t.Fatalf("Total = %d, %v", n, ok)
	}
	if n, ok := Total([]Line{{ItemID: mug, Quantity: 1000, Price: transfer.MaxAmount / 1000}}); !ok || n != transfer.MaxAmount {
		t.Fatalf("Total at the bound = %d, %v", n, ok)
	}
}

// Events and states go through the codec unchanged.
func TestCodec(t *testing.T) {
	d := Domain{}
	var s State
	for _, c := range []Command{place, {Action: Record, Step: Reserved, Lines: priced}, {Action: Record, Step: PaymentFailed, Code: "wallet_frozen"},
		{Action: Record, Step: Failed, Code: "wallet_frozen"}} {
		c.At = t0
		e, err := Decide(s, c)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := d.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := d.DecodeEvent(enc.Type, enc.Schema, e.Version, t0, enc.Data)
		if err != nil || !reflect.DeepEqual(back, e) {
			t.Fatalf("event %+v came back as %+v (%v)", e, back, err)
		}
		if err := Check(s, back); err != nil {
			t.Fatal(err)
		}
		s = Evolve(s, e)
		st, err := d.DecodeState(s.Version, d.EncodeState(s))
		if err != nil || !bytes.Equal(d.EncodeState(st), d.EncodeState(s)) {
			t.Fatalf("state %+v came back as %+v (%v)", s, st, err)
		}
	}
	if _, err := d.DecodeEvent("failed", SchemaVersion, 2, t0, []byte(`{"wallet_id":"`+buyer+`","shop_wallet_id":"`+shop+`","lines":[]}`)); err == nil {
		t.Error("a failure without a code decoded")
	}
	if PaymentID("a") == PaymentID("b") || PaymentID("a") != PaymentID("a") {
		t.Error("PaymentID is not a function of the order id")
	}
}

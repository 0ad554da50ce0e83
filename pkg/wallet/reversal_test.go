package wallet_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/wallet"
)

// reverse is a reversal of e, as the engine hands it to Decide: with the
// event it names (nil: none).
func reverse(e *wallet.Event) wallet.Command {
	return wallet.Command{Action: wallet.Reverse, Reverses: ksuid.New().String(), Original: e}
}

// A credit taken back is a debit, refused as one (recorded) when the money
// is not available or the wallet frozen; a debit taken back is a credit;
// each at most once; only credits and debits can be.
func TestReversals(t *testing.T) {
	s, evs, _ := run(t, credit(100), debit(30))
	c, d := *evs[0], *evs[1]
	// 70 available, the credit was 100: refused as a debit would be.
	next, err := wallet.Decide(s, reverse(&c))
	if err != nil || next.Type != wallet.ReversalRejected || next.Reason != wallet.ReasonInsufficientFunds || next.BalanceAfter != 70 || next.Amount != 100 {
		t.Fatalf("reversal of a credit of 100 at 70: %+v %v", next, err)
	}
	if err := (wallet.Domain{}).Check(s, next, wallet.Evolve(s, next)); err != nil {
		t.Fatal(err)
	}
	s, evs, errs := run(t, credit(100), debit(30), reverse(&d), reverse(&d), reverse(&c), wallet.Command{Action: wallet.Freeze}, reverse(&c))
	if r := evs[2]; r == nil || r.Type != wallet.Reversal || r.BalanceAfter != 100 || r.ReversedVersion != 2 || r.ReversedType != wallet.Debited {
		t.Fatalf("reversal of the debit: %+v %v", evs[2], errs[2])
	}
	if !errors.Is(errs[3], wallet.ErrAlreadyReversed) {
		t.Fatalf("a second reversal of the debit: %v", errs[3])
	}
	if r := evs[4]; r == nil || r.Type != wallet.Reversal || r.BalanceAfter != 0 || !s.Reversed(1) || !s.Reversed(2) {
		t.Fatalf("reversal of the credit: %+v, state %+v", r, s)
	}
	if !errors.Is(errs[6], wallet.ErrAlreadyReversed) {
		t.Fatalf("a reversal of a reversed credit on a frozen wallet: %v", errs[6])
	}
	if tx := wallet.NewTransaction("e", *evs[4], h0); tx.Type != "reversal" || tx.Amount != -100 || tx.Reverses == "" {
		t.Fatalf("listed as %+v", tx)
	}
	_, evs, _ = run(t, credit(50), wallet.Command{Action: wallet.Freeze})
	frozen := wallet.Fold([]wallet.Event{*evs[0], *evs[1]})
	if r, err := wallet.Decide(frozen, reverse(evs[0])); err != nil || r.Type != wallet.ReversalRejected || r.Reason != wallet.ReasonFrozen {
		t.Fatalf("reversal of a credit on a frozen wallet: %+v %v", r, err)
	}
	held, hevs, _ := run(t, credit(100), hold("h", 60))
	for _, c := range []struct {
		name string
		cmd  wallet.Command
		want error
	}{
		{"no such transaction", reverse(nil), wallet.ErrTransactionNotFound},
		{"a hold", reverse(hevs[1]), wallet.ErrNotReversible},
		{"a transaction id that is not one", wallet.Command{Action: wallet.Reverse, Reverses: "x", Original: hevs[0]}, wallet.ErrInvalidTransactionID},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cmd.At = h0
			if e, err := wallet.Decide(held, c.cmd); !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", e, err, c.want)
			}
		})
	}
	if r, _ := wallet.Decide(held, reverse(hevs[0])); r.Type != wallet.ReversalRejected || r.Reason != wallet.ReasonInsufficientFunds {
		t.Fatalf("reversal of a credit partly held: %+v", r)
	}
}

// Reversals survive the codec and the state its encoding; verify's rules
// catch a second reversal of the same transaction.
func TestReversalCodecAndCheck(t *testing.T) {
	d := wallet.Domain{}
	_, evs, _ := run(t, credit(100), debit(30))
	d1 := *evs[1]
	s2, evs2, _ := run(t, credit(100), debit(30), reverse(&d1), debit(100), wallet.Command{Action: wallet.Freeze}, reverse(evs[0]))
	roundTrip(t, evs2)
	back, err := d.DecodeState(s2.Version, d.EncodeState(s2))
	if err != nil || !reflect.DeepEqual(back, s2) || !back.Reversed(2) {
		t.Fatalf("state %+v stored as %s reads back as %+v (%v)", s2, d.EncodeState(s2), back, err)
	}
	before := wallet.Fold([]wallet.Event{*evs2[0], *evs2[1], *evs2[2]})
	again := wallet.Event{Type: wallet.Reversal, Version: 4, Amount: 30, BalanceAfter: 130, Reverses: evs2[2].Reverses, ReversedVersion: 2, ReversedType: wallet.Debited}
	if err := d.Check(before, again, wallet.Evolve(before, again)); err == nil {
		t.Fatal("Check accepted a second reversal of a debit")
	}
	future := wallet.Event{Type: wallet.Reversal, Version: 4, Amount: 30, BalanceAfter: 130, Reverses: evs2[2].Reverses, ReversedVersion: 9, ReversedType: wallet.Debited}
	if err := d.Check(before, future, wallet.Evolve(before, future)); err == nil {
		t.Fatal("Check accepted a reversal of a version to come")
	}
	if _, err := d.DecodeState(3, []byte(`{"balance":1,"reversed":[3]}`)); err == nil {
		t.Fatal("a state reversing its own version was read")
	}
}

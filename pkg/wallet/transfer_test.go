package wallet_test

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/wallet"
)

var (
	tid   = ksuid.New().String()
	other = ksuid.New().String()
)

func transferHold(id string, n int64) wallet.Command {
	return wallet.Command{Action: wallet.PlaceHold, HoldID: wallet.TransferHoldID(id), TransferID: id, Amount: n}
}
func transferIn(id string, n int64) wallet.Command {
	return wallet.Command{Action: wallet.TransferIn, TransferID: id, Counterpart: other, Amount: n}
}
func transferOut(id string) wallet.Command {
	return wallet.Command{Action: wallet.TransferOut, TransferID: id, Counterpart: other}
}
func transferVoid(id string) wallet.Command {
	return wallet.Command{Action: wallet.VoidHold, HoldID: wallet.TransferHoldID(id), TransferID: id}
}

// The wallet a transfer leaves: its hold sets the money aside and never
// expires; transfer_out captures all of it, once, and is listed with the
// transfer and the other wallet; a second transfer_out finds no hold.
func TestTransferOutCapturesTheTransfersHold(t *testing.T) {
	s, evs, errs := run(t, credit(100), transferHold(tid, 70), debit(31), transferOut(tid), transferOut(tid))
	if errs[1] != nil || evs[1].Type != wallet.Held || !evs[1].ExpiresAt.IsZero() {
		t.Fatalf("the transfer's hold: %+v %v", evs[1], errs[1])
	}
	if at, _, ok := (wallet.Domain{}).Alarm(wallet.Fold([]wallet.Event{*evs[0], *evs[1]})); ok {
		t.Fatalf("a transfer's hold sets an alarm at %v", at)
	}
	if evs[2].Type != wallet.DebitRejected {
		t.Fatalf("a debit of held money: %+v", evs[2])
	}
	want := wallet.Event{Type: wallet.TransferredOut, Version: 4, At: h0.Add(3 * time.Second), Amount: 70, BalanceAfter: 30,
		HoldID: wallet.TransferHoldID(tid), HeldAt: h0.Add(time.Second), TransferID: tid, Counterpart: other}
	if !reflect.DeepEqual(*evs[3], want) {
		t.Fatalf("transfer_out:\n got %+v\nwant %+v", *evs[3], want)
	}
	if e := evs[4]; e.Type != wallet.CommandRejected || e.Reason != wallet.ReasonHoldNotActive || e.HoldID != wallet.TransferHoldID(tid) {
		t.Fatalf("a second transfer_out: %+v", e)
	}
	if s.Balance != 30 || s.Held() != 0 {
		t.Fatalf("state %+v held %d", s, s.Held())
	}
	tx := wallet.NewTransaction("e1", *evs[3], evs[3].At)
	if tx.Type != "transfer_out" || tx.Amount != -70 || tx.TransferID != tid || tx.Counterpart != other {
		t.Fatalf("listed as %+v", tx)
	}
}

// The wallet a transfer reaches takes the money like a credit, frozen or
// not; a closed wallet, or a balance that would overflow, refuses it as an
// event, so that the transfer learns the same refusal whenever it asks.
func TestTransferIn(t *testing.T) {
	s, evs, _ := run(t, credit(5), wallet.Command{Action: wallet.Freeze}, transferIn(tid, 10))
	if e := evs[2]; e.Type != wallet.TransferredIn || e.BalanceAfter != 15 || e.TransferID != tid || e.Counterpart != other || s.Balance != 15 {
		t.Fatalf("transfer_in on a frozen wallet: %+v, state %+v", e, s)
	}
	if tx := wallet.NewTransaction("e", *evs[2], h0); tx.Type != "transfer_in" || tx.Amount != 10 || tx.Counterpart != other {
		t.Fatalf("listed as %+v", tx)
	}
	_, evs, _ = run(t, credit(1), debit(1), wallet.Command{Action: wallet.Close}, transferIn(tid, 10))
	if e := evs[3]; e.Type != wallet.TransferInRejected || e.Reason != wallet.ReasonClosed || e.TransferID != tid {
		t.Fatalf("transfer_in on a closed wallet: %+v", e)
	}
	_, evs, _ = run(t, credit(wallet.MaxAmount), transferIn(tid, 1))
	full := wallet.Event{Type: wallet.Credited, Version: 1, At: h0, Amount: math.MaxInt64 - 5, BalanceAfter: math.MaxInt64 - 5}
	s = wallet.Evolve(wallet.State{}, full)
	e, err := wallet.Decide(s, transferIn(tid, 6))
	if err != nil || e.Type != wallet.TransferInRejected || e.Reason != wallet.ReasonBalanceOverflow || e.BalanceAfter != s.Balance {
		t.Fatalf("transfer_in past the largest balance: %+v %v", e, err)
	}
	if err := (wallet.Domain{}).Check(s, e, wallet.Evolve(s, e)); err != nil {
		t.Fatal(err)
	}
	if evs[1].Type != wallet.TransferredIn {
		t.Fatalf("transfer_in of 1: %+v", evs[1])
	}
}

// A transfer's hold is its transfer's alone: nobody captures or voids it
// by hold id, and a transfer holds and voids only its own.
func TestTransferHoldIsTheTransfers(t *testing.T) {
	active, _, _ := run(t, credit(100), transferHold(tid, 10))
	for _, c := range []struct {
		name string
		cmd  wallet.Command
		want error
	}{
		{"a capture by hold id", capture(wallet.TransferHoldID(tid), 0), wallet.ErrHoldOwned},
		{"a void by hold id", void(wallet.TransferHoldID(tid)), wallet.ErrHoldOwned},
		{"a client's hold under a transfer's id", hold(wallet.TransferHoldID(ksuid.New().String()), 1), wallet.ErrHoldOwned},
		{"another transfer's hold", wallet.Command{Action: wallet.VoidHold, HoldID: wallet.TransferHoldID(tid), TransferID: other}, wallet.ErrInvalidHoldID},
		{"a transfer's hold that expires", wallet.Command{Action: wallet.PlaceHold, HoldID: wallet.TransferHoldID(other), TransferID: other, Amount: 1, ExpiresIn: time.Minute}, wallet.ErrInvalidExpiry},
		{"a capture naming a transfer", wallet.Command{Action: wallet.CaptureHold, HoldID: wallet.TransferHoldID(tid), TransferID: tid}, wallet.ErrInvalidHoldID},
		{"a transfer id that is not a KSUID", transferIn("t1", 1), wallet.ErrInvalidTransferID},
		{"a counterpart that is not a wallet", wallet.Command{Action: wallet.TransferIn, TransferID: tid, Counterpart: "w", Amount: 1}, wallet.ErrInvalidTransferID},
		{"transfer_in of nothing", transferIn(tid, 0), wallet.ErrInvalidAmount},
		{"transfer_out with an amount", wallet.Command{Action: wallet.TransferOut, TransferID: tid, Counterpart: other, Amount: 5}, wallet.ErrInvalidAmount},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cmd.At = h0
			if e, err := wallet.Decide(active, c.cmd); !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", e, err, c.want)
			}
		})
	}
	s, evs, errs := run(t, credit(100), transferHold(tid, 10), transferVoid(tid), transferVoid(tid))
	if errs[2] != nil || evs[2].Type != wallet.HoldVoided || evs[3].Type != wallet.CommandRejected || s.Held() != 0 {
		t.Fatalf("the transfer voids its hold, once: %+v %+v %v", evs[2], evs[3], errs[2])
	}
}

// The legs survive the codec, and a state holding a transfer's hold its
// encoding; verify's rules catch legs that break them.
func TestTransferLegsCodecAndCheck(t *testing.T) {
	d := wallet.Domain{}
	s, evs, _ := run(t, credit(100), transferHold(tid, 70), transferIn(other, 5), transferHold(other, 10), transferOut(tid), transferVoid(other),
		wallet.Command{Action: wallet.Close}, transferOut(tid))
	b := d.EncodeState(wallet.Fold([]wallet.Event{*evs[0], *evs[1]}))
	if back, err := d.DecodeState(2, b); err != nil || back.Held() != 70 {
		t.Fatalf("state %s reads back as %+v (%v)", b, back, err)
	}
	roundTrip(t, evs)
	if s.Balance != 35 {
		t.Fatalf("balance %d", s.Balance)
	}
	held, _, _ := run(t, credit(100), transferHold(tid, 70))
	for _, c := range []struct {
		name string
		e    wallet.Event
	}{
		{"a transfer_out of another amount", wallet.Event{Type: wallet.TransferredOut, Version: 3, Amount: 60, BalanceAfter: 40, TransferID: tid, Counterpart: other, HoldID: wallet.TransferHoldID(tid)}},
		{"a transfer_out with no hold", wallet.Event{Type: wallet.TransferredOut, Version: 3, Amount: 70, BalanceAfter: 30, TransferID: other, Counterpart: other, HoldID: wallet.TransferHoldID(other)}},
		{"an expiry of a transfer's hold", wallet.Event{Type: wallet.HoldExpired, Version: 3, At: h0.Add(time.Hour), HoldID: wallet.TransferHoldID(tid), Amount: 70, HeldAt: h0.Add(time.Second)}},
		{"a capture of a transfer's hold", wallet.Event{Type: wallet.HoldCaptured, Version: 3, HoldID: wallet.TransferHoldID(tid), Amount: 70, Captured: 70, BalanceAfter: 30, HeldAt: h0.Add(time.Second)}},
		{"a transfer's hold that expires", wallet.Event{Type: wallet.Held, Version: 3, At: h0, HoldID: wallet.TransferHoldID(other), Amount: 1, ExpiresAt: h0.Add(time.Minute)}},
		{"a client's hold that never expires", wallet.Event{Type: wallet.Held, Version: 3, At: h0, HoldID: "h9", Amount: 1}},
		{"a transfer_in refused for an overflow that was not", wallet.Event{Type: wallet.TransferInRejected, Version: 3, Amount: 1, BalanceAfter: 100, Reason: wallet.ReasonBalanceOverflow, TransferID: tid, Counterpart: other}},
		{"a transfer_in with a wrong balance", wallet.Event{Type: wallet.TransferredIn, Version: 3, Amount: 1, BalanceAfter: 100, TransferID: tid, Counterpart: other}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := d.Check(held, c.e, wallet.Evolve(held, c.e)); err == nil {
				t.Fatalf("Check accepted %+v", c.e)
			}
		})
	}
}

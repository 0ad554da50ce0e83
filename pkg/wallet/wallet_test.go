package wallet_test

import (
	"errors"
	"math"
	"testing"

	"coffer/pkg/wallet"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		given   []wallet.Event
		when    wallet.Command
		then    wallet.Event
		wantErr error
	}{
		{
			name: "credit on a fresh wallet",
			when: wallet.Command{Action: wallet.Credit, Amount: 5},
			then: wallet.Event{Type: wallet.Credited, Version: 1, Amount: 5, BalanceAfter: 5},
		},
		{
			name: "debit on a fresh wallet is rejected, not an error",
			when: wallet.Command{Action: wallet.Debit, Amount: 5},
			then: wallet.Event{Type: wallet.DebitRejected, Version: 1, Amount: 5, BalanceAfter: 0, Reason: wallet.ReasonInsufficientFunds},
		},
		{
			name:  "debit of the whole balance",
			given: []wallet.Event{{Type: wallet.Credited, Version: 1, Amount: 5, BalanceAfter: 5}},
			when:  wallet.Command{Action: wallet.Debit, Amount: 5},
			then:  wallet.Event{Type: wallet.Debited, Version: 2, Amount: 5, BalanceAfter: 0},
		},
		{
			name: "debit one more than the balance",
			given: []wallet.Event{
				{Type: wallet.Credited, Version: 1, Amount: 7, BalanceAfter: 7},
				{Type: wallet.DebitRejected, Version: 2, Amount: 9, BalanceAfter: 7, Reason: wallet.ReasonInsufficientFunds},
			},
			when: wallet.Command{Action: wallet.Debit, Amount: 8},
			then: wallet.Event{Type: wallet.DebitRejected, Version: 3, Amount: 8, BalanceAfter: 7, Reason: wallet.ReasonInsufficientFunds},
		},
		{
			name: "credit of the largest amount",
			when: wallet.Command{Action: wallet.Credit, Amount: wallet.MaxAmount},
			then: wallet.Event{Type: wallet.Credited, Version: 1, Amount: wallet.MaxAmount, BalanceAfter: wallet.MaxAmount},
		},
		{name: "zero amount", when: wallet.Command{Action: wallet.Credit, Amount: 0}, wantErr: wallet.ErrInvalidAmount},
		{name: "negative amount", when: wallet.Command{Action: wallet.Debit, Amount: -1}, wantErr: wallet.ErrInvalidAmount},
		{name: "amount above 10^15", when: wallet.Command{Action: wallet.Credit, Amount: wallet.MaxAmount + 1}, wantErr: wallet.ErrInvalidAmount},
		{name: "unknown action", when: wallet.Command{Action: "steal", Amount: 1}, wantErr: wallet.ErrUnknownAction},
		{
			name:    "credit that would overflow int64",
			given:   []wallet.Event{{Type: wallet.Credited, Version: 1, Amount: 1, BalanceAfter: math.MaxInt64 - 10}},
			when:    wallet.Command{Action: wallet.Credit, Amount: 11},
			wantErr: wallet.ErrBalanceOverflow,
		},
		{
			name:  "credit up to exactly MaxInt64",
			given: []wallet.Event{{Type: wallet.Credited, Version: 1, Amount: 1, BalanceAfter: math.MaxInt64 - 10}},
			when:  wallet.Command{Action: wallet.Credit, Amount: 10},
			then:  wallet.Event{Type: wallet.Credited, Version: 2, Amount: 10, BalanceAfter: math.MaxInt64},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := wallet.Fold(tt.given)
			if len(tt.given) > 0 {
				// The given events carry their own balances; make the state match them.
				s.Balance = tt.given[len(tt.given)-1].BalanceAfter
			}
			got, err := wallet.Decide(s, tt.when)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decide error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.then {
				t.Fatalf("Decide = %+v, want %+v", got, tt.then)
			}
		})
	}
}

func TestEvolveFollowsDecide(t *testing.T) {
	cmds := []wallet.Command{
		{Action: wallet.Debit, Amount: 3},
		{Action: wallet.Credit, Amount: 10},
		{Action: wallet.Debit, Amount: 4},
		{Action: wallet.Debit, Amount: 7},
		{Action: wallet.Debit, Amount: 6},
		{Action: wallet.Credit, Amount: 1},
	}
	var s wallet.State
	var log []wallet.Event
	for _, c := range cmds {
		e, err := wallet.Decide(s, c)
		if err != nil {
			t.Fatal(err)
		}
		s = wallet.Evolve(s, e)
		if s.Balance != e.BalanceAfter || s.Version != e.Version {
			t.Fatalf("after %+v state is %+v, event says balance %d version %d", e, s, e.BalanceAfter, e.Version)
		}
		log = append(log, e)
	}
	if want := (wallet.State{Balance: 1, Version: 6}); s != want || wallet.Fold(log) != want {
		t.Fatalf("final state %+v, fold %+v, want %+v", s, wallet.Fold(log), want)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	events := []wallet.Event{
		{Type: wallet.Credited, Version: 1, Amount: 5, BalanceAfter: 5},
		{Type: wallet.Debited, Version: 2, Amount: 5, BalanceAfter: 0},
		{Type: wallet.DebitRejected, Version: 3, Amount: 1, BalanceAfter: 0, Reason: wallet.ReasonInsufficientFunds},
	}
	for _, e := range events {
		data, err := wallet.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wallet.DecodeEvent(e.Type, wallet.SchemaVersion, e.Version, data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if got != e {
			t.Fatalf("round trip of %+v gave %+v", e, got)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		typ    wallet.EventType
		schema int
		data   string
	}{
		{"unknown type", "refunded", 1, `{"amount":1,"balance_after":1}`},
		{"unknown schema", wallet.Credited, 2, `{"amount":1,"balance_after":1}`},
		{"unknown field", wallet.Credited, 1, `{"amount":1,"balance_after":1,"x":1}`},
		{"zero amount", wallet.Credited, 1, `{"amount":0,"balance_after":1}`},
		{"negative balance", wallet.Debited, 1, `{"amount":1,"balance_after":-1}`},
		{"rejection without reason", wallet.DebitRejected, 1, `{"amount":1,"balance_after":0}`},
		{"credit with reason", wallet.Credited, 1, `{"amount":1,"balance_after":1,"reason":"insufficient_funds"}`},
		{"not JSON", wallet.Credited, 1, `amount=1`},
		{"trailing data", wallet.Credited, 1, `{"amount":1,"balance_after":1} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := wallet.DecodeEvent(tt.typ, tt.schema, 1, []byte(tt.data)); err == nil {
				t.Fatalf("DecodeEvent accepted %s as %+v", tt.data, e)
			}
		})
	}
}

func TestEventNamesAreExplicit(t *testing.T) {
	// These strings are in every stored log and on the wire; renaming a Go
	// identifier must never change them.
	for typ, want := range map[wallet.EventType]string{
		wallet.Credited: "credited", wallet.Debited: "debited", wallet.DebitRejected: "debit_rejected",
	} {
		if string(typ) != want {
			t.Errorf("event type %q, want %q", typ, want)
		}
	}
}

// FuzzDecodeEvent: reading stored data never panics, and whatever it accepts
// encodes back to data that decodes to the same event.
func FuzzDecodeEvent(f *testing.F) {
	f.Add("credited", 1, int64(1), []byte(`{"amount":5,"balance_after":5}`))
	f.Add("debited", 1, int64(2), []byte(`{"amount":5,"balance_after":0}`))
	f.Add("debit_rejected", 1, int64(3), []byte(`{"amount":9,"balance_after":0,"reason":"insufficient_funds"}`))
	f.Add("credited", 2, int64(1), []byte(`{"amount":5,"balance_after":5}`))
	f.Add("credited", 1, int64(0), []byte(`{"amount":1e3,"balance_after":5}`))
	f.Add("refunded", 1, int64(1), []byte(`{}`))
	f.Fuzz(func(t *testing.T, typ string, schema int, version int64, data []byte) {
		e, err := wallet.DecodeEvent(wallet.EventType(typ), schema, version, data)
		if err != nil {
			return
		}
		again, err := wallet.EncodeEvent(e)
		if err != nil {
			t.Fatalf("accepted %+v but cannot encode it: %v", e, err)
		}
		back, err := wallet.DecodeEvent(e.Type, wallet.SchemaVersion, e.Version, again)
		if err != nil || back != e {
			t.Fatalf("%+v encoded as %s decodes to %+v, %v", e, again, back, err)
		}
	})
}

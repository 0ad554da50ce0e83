package wallet_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

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
			if !reflect.DeepEqual(got, tt.then) {
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
	if want := (wallet.State{Balance: 1, Version: 6}); !reflect.DeepEqual(s, want) || !reflect.DeepEqual(wallet.Fold(log), want) {
		t.Fatalf("final state %+v, fold %+v, want %+v", s, wallet.Fold(log), want)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	owner, limit := "ann@example.com", int64(500)
	events := []wallet.Event{
		{Type: wallet.Credited, Version: 1, Amount: 5, BalanceAfter: 5},
		{Type: wallet.Debited, Version: 2, Amount: 5, BalanceAfter: 0},
		{Type: wallet.DebitRejected, Version: 3, Amount: 1, BalanceAfter: 0, Reason: wallet.ReasonInsufficientFunds},
		{Type: wallet.Debited, Version: 4, Amount: 50, BalanceAfter: -50},
		{Type: wallet.DebitRejected, Version: 5, Amount: 1, BalanceAfter: 0, Reason: wallet.ReasonFrozen},
		{Type: wallet.CreditRejected, Version: 6, Amount: 1, BalanceAfter: 0, Reason: wallet.ReasonClosed},
		{Type: wallet.Opened, Version: 1},
		{Type: wallet.Opened, Version: 1, Owner: &owner, Metadata: map[string]string{"tier": "gold"}, OverdraftLimit: &limit},
		{Type: wallet.Updated, Version: 2, Metadata: map[string]string{}},
		{Type: wallet.Updated, Version: 2, Owner: &owner},
		{Type: wallet.Frozen, Version: 3},
		{Type: wallet.Unfrozen, Version: 4},
		{Type: wallet.Closed, Version: 5},
		{Type: wallet.CommandRejected, Version: 6, Action: wallet.Close, Reason: wallet.ReasonBalanceNotZero},
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
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %+v (%s) gave %+v", e, data, got)
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
		{"balance below the largest overdraft", wallet.Debited, 1, `{"amount":1,"balance_after":-1000000000000001}`},
		{"refused for no reason of its kind", wallet.CreditRejected, 1, `{"amount":1,"balance_after":0,"reason":"insufficient_funds"}`},
		{"unknown reason", wallet.DebitRejected, 1, `{"amount":1,"balance_after":0,"reason":"tired"}`},
		{"update of nothing", wallet.Updated, 1, `{}`},
		{"owner too long", wallet.Opened, 1, `{"owner":"` + strings.Repeat("o", 256) + `"}`},
		{"negative overdraft", wallet.Opened, 1, `{"overdraft_limit":-1}`},
		{"metadata with an empty key", wallet.Opened, 1, `{"metadata":{"":"x"}}`},
		{"metadata of numbers", wallet.Opened, 1, `{"metadata":{"a":1}}`},
		{"status change with data", wallet.Frozen, 1, `{"x":1}`},
		{"refusal of an unknown action", wallet.CommandRejected, 1, `{"action":"steal","reason":"wallet_closed"}`},
		{"refusal without a reason", wallet.CommandRejected, 1, `{"action":"close"}`},
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
		wallet.CreditRejected: "credit_rejected", wallet.Opened: "opened", wallet.Updated: "updated", wallet.Frozen: "frozen",
		wallet.Unfrozen: "unfrozen", wallet.Closed: "closed", wallet.CommandRejected: "command_rejected",
		wallet.Held: "held", wallet.HoldCaptured: "hold_captured", wallet.HoldVoided: "hold_voided", wallet.HoldExpired: "hold_expired",
		wallet.HoldRejected: "hold_rejected",
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
	f.Add("held", 1, int64(2), []byte(`{"hold_id":"h1","amount":5,"expires_at":"2026-12-02T12:01:00Z"}`))
	f.Add("hold_captured", 1, int64(3), []byte(`{"hold_id":"h1","amount":5,"expires_at":"2026-12-02T12:01:00Z","held_at":"2026-12-02T12:00:00Z","captured":2,"balance_after":3}`))
	f.Add("hold_rejected", 1, int64(3), []byte(`{"hold_id":"h1","amount":5,"expires_at":"2026-12-02T12:01:00Z","balance_after":3,"reason":"insufficient_funds"}`))
	f.Add("command_rejected", 1, int64(4), []byte(`{"action":"capture","reason":"hold_not_active","hold_id":"h1"}`))
	f.Add("debited", 1, int64(2), []byte(`{"amount":5,"balance_after":0}`))
	f.Add("debit_rejected", 1, int64(3), []byte(`{"amount":9,"balance_after":0,"reason":"insufficient_funds"}`))
	f.Add("credited", 2, int64(1), []byte(`{"amount":5,"balance_after":5}`))
	f.Add("credited", 1, int64(0), []byte(`{"amount":1e3,"balance_after":5}`))
	f.Add("refunded", 1, int64(1), []byte(`{}`))
	f.Add("opened", 1, int64(1), []byte(`{"owner":"a@b.c","metadata":{"k":"v"},"overdraft_limit":5}`))
	f.Add("updated", 1, int64(2), []byte(`{"metadata":{}}`))
	f.Add("closed", 1, int64(3), []byte(`{}`))
	f.Add("command_rejected", 1, int64(4), []byte(`{"action":"close","reason":"balance_not_zero"}`))
	f.Add("credit_rejected", 1, int64(5), []byte(`{"amount":5,"balance_after":-5,"reason":"wallet_closed"}`))
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
		if err != nil || !reflect.DeepEqual(back, e) {
			t.Fatalf("%+v encoded as %s decodes to %+v, %v", e, again, back, err)
		}
	})
}

// TestLifecycle: given a wallet's events, when a command, then the event
// (a refusal that is a business outcome is one) or the error.
func TestLifecycle(t *testing.T) {
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	owner, limit, other := "ann@example.com", int64(100), "bob"
	str := func(s string) *string { return &s }
	opened := wallet.Event{Type: wallet.Opened, Version: 1, At: at, Owner: &owner, OverdraftLimit: &limit}
	credited := func(v, amount, after int64) wallet.Event {
		return wallet.Event{Type: wallet.Credited, Version: v, Amount: amount, BalanceAfter: after}
	}
	frozen := func(v int64) wallet.Event { return wallet.Event{Type: wallet.Frozen, Version: v} }
	closed := func(v int64) wallet.Event { return wallet.Event{Type: wallet.Closed, Version: v} }
	tests := []struct {
		name    string
		given   []wallet.Event
		when    wallet.Command
		then    wallet.Event
		wantErr error
	}{
		{name: "open a new wallet", when: wallet.Command{Action: wallet.Open, At: at, Profile: wallet.Profile{Owner: &owner, OverdraftLimit: &limit}}, then: opened},
		{name: "open with metadata", when: wallet.Command{Action: wallet.Open, Profile: wallet.Profile{Metadata: map[string]*string{"tier": str("gold")}}},
			then: wallet.Event{Type: wallet.Opened, Version: 1, Metadata: map[string]string{"tier": "gold"}}},
		{name: "open twice", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Open}, wantErr: wallet.ErrExists},
		{name: "open a wallet credited before", given: []wallet.Event{credited(1, 5, 5)}, when: wallet.Command{Action: wallet.Open}, wantErr: wallet.ErrExists},
		{name: "debit into the overdraft", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Debit, Amount: 100},
			then: wallet.Event{Type: wallet.Debited, Version: 2, Amount: 100, BalanceAfter: -100}},
		{name: "debit past the overdraft", given: []wallet.Event{opened, credited(2, 5, 5)}, when: wallet.Command{Action: wallet.Debit, Amount: 106},
			then: wallet.Event{Type: wallet.DebitRejected, Version: 3, Amount: 106, BalanceAfter: 5, Reason: wallet.ReasonInsufficientFunds}},
		{name: "a frozen wallet refuses a debit", given: []wallet.Event{opened, credited(2, 5, 5), frozen(3)}, when: wallet.Command{Action: wallet.Debit, Amount: 1},
			then: wallet.Event{Type: wallet.DebitRejected, Version: 4, Amount: 1, BalanceAfter: 5, Reason: wallet.ReasonFrozen}},
		{name: "a frozen wallet takes a credit", given: []wallet.Event{opened, frozen(2)}, when: wallet.Command{Action: wallet.Credit, Amount: 3},
			then: credited(3, 3, 3)},
		{name: "freeze a frozen wallet", given: []wallet.Event{opened, frozen(2)}, when: wallet.Command{Action: wallet.Freeze},
			then: wallet.Event{Type: wallet.CommandRejected, Version: 3, Action: wallet.Freeze, Reason: wallet.ReasonFrozen}},
		{name: "unfreeze", given: []wallet.Event{opened, frozen(2)}, when: wallet.Command{Action: wallet.Unfreeze}, then: wallet.Event{Type: wallet.Unfrozen, Version: 3}},
		{name: "unfreeze an open wallet", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Unfreeze},
			then: wallet.Event{Type: wallet.CommandRejected, Version: 2, Action: wallet.Unfreeze, Reason: wallet.ReasonNotFrozen}},
		{name: "close with money in it", given: []wallet.Event{opened, credited(2, 5, 5)}, when: wallet.Command{Action: wallet.Close},
			then: wallet.Event{Type: wallet.CommandRejected, Version: 3, Action: wallet.Close, Reason: wallet.ReasonBalanceNotZero}},
		{name: "close at balance 0", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Close}, then: closed(2)},
		{name: "close a frozen wallet", given: []wallet.Event{opened, frozen(2)}, when: wallet.Command{Action: wallet.Close}, then: closed(3)},
		{name: "a closed wallet refuses a credit", given: []wallet.Event{opened, closed(2)}, when: wallet.Command{Action: wallet.Credit, Amount: 1},
			then: wallet.Event{Type: wallet.CreditRejected, Version: 3, Amount: 1, Reason: wallet.ReasonClosed}},
		{name: "a closed wallet refuses a debit", given: []wallet.Event{opened, closed(2)}, when: wallet.Command{Action: wallet.Debit, Amount: 1},
			then: wallet.Event{Type: wallet.DebitRejected, Version: 3, Amount: 1, Reason: wallet.ReasonClosed}},
		{name: "a closed wallet refuses an update", given: []wallet.Event{opened, closed(2)}, when: wallet.Command{Action: wallet.Update, Profile: wallet.Profile{Owner: &other}},
			then: wallet.Event{Type: wallet.CommandRejected, Version: 3, Action: wallet.Update, Reason: wallet.ReasonClosed}},
		{name: "a closed wallet refuses to close again", given: []wallet.Event{opened, closed(2)}, when: wallet.Command{Action: wallet.Close},
			then: wallet.Event{Type: wallet.CommandRejected, Version: 3, Action: wallet.Close, Reason: wallet.ReasonClosed}},
		{name: "update the owner", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Update, Profile: wallet.Profile{Owner: &other}},
			then: wallet.Event{Type: wallet.Updated, Version: 2, Owner: &other}},
		{name: "update merges metadata", given: []wallet.Event{{Type: wallet.Opened, Version: 1, Metadata: map[string]string{"a": "1", "b": "2"}}},
			when: wallet.Command{Action: wallet.Update, Profile: wallet.Profile{Metadata: map[string]*string{"b": nil, "c": str("3")}}},
			then: wallet.Event{Type: wallet.Updated, Version: 2, Metadata: map[string]string{"a": "1", "c": "3"}}},
		{name: "update of nothing", given: []wallet.Event{opened}, when: wallet.Command{Action: wallet.Update}, wantErr: wallet.ErrNothingToChange},
		{name: "lifecycle of a wallet nobody used", when: wallet.Command{Action: wallet.Freeze}, wantErr: wallet.ErrNotFound},
		{name: "a wallet nobody opened still takes credits", when: wallet.Command{Action: wallet.Credit, Amount: 5}, then: credited(1, 5, 5)},
		{name: "and can be frozen once used", given: []wallet.Event{credited(1, 5, 5)}, when: wallet.Command{Action: wallet.Freeze}, then: frozen(2)},
		{name: "owner too long", when: wallet.Command{Action: wallet.Open, Profile: wallet.Profile{Owner: str(strings.Repeat("o", 256))}}, wantErr: wallet.ErrInvalidOwner},
		{name: "overdraft above 10^15", when: wallet.Command{Action: wallet.Open, Profile: wallet.Profile{OverdraftLimit: func() *int64 { n := wallet.MaxAmount + 1; return &n }()}}, wantErr: wallet.ErrInvalidOverdraft},
		{name: "33 metadata keys", when: wallet.Command{Action: wallet.Open, Profile: wallet.Profile{Metadata: func() map[string]*string {
			m := map[string]*string{}
			for i := range 33 {
				m[strings.Repeat("k", i+1)] = str("v")
			}
			return m
		}()}}, wantErr: wallet.ErrInvalidMetadata},
		{name: "a metadata value over 512 bytes", when: wallet.Command{Action: wallet.Open, Profile: wallet.Profile{Metadata: map[string]*string{"k": str(strings.Repeat("v", 513))}}}, wantErr: wallet.ErrInvalidMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := wallet.Fold(tt.given)
			got, err := wallet.Decide(s, tt.when)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decide error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.then) {
				t.Fatalf("Decide = %+v, want %+v", got, tt.then)
			}
			if err == nil {
				after := wallet.Evolve(s, got)
				if err := (wallet.Domain{}).Check(s, got, after); err != nil {
					t.Fatalf("the event breaks the wallet's rules: %v", err)
				}
			}
		})
	}
}

// TestStateSurvivesItsEncoding: what the state log holds reads back as the
// state, for the plain wallet of nearly every event and for a full one.
func TestStateSurvivesItsEncoding(t *testing.T) {
	d := wallet.Domain{}
	at := time.Date(2026, 12, 2, 12, 0, 0, 123, time.UTC).UnixNano()
	for _, s := range []wallet.State{
		{Balance: 5, Version: 1, Created: at},
		wallet.State{Balance: -40, Version: 9, Created: at}.WithLife(wallet.Lifecycle{Status: wallet.StatusFrozen, Opened: true, Owner: "ann",
			Metadata: map[string]string{"k": "v"}, OverdraftLimit: 50}),
		wallet.State{Balance: 0, Version: 3, Created: at}.WithLife(wallet.Lifecycle{Status: wallet.StatusClosed, Opened: true}),
	} {
		b := d.EncodeState(s)
		back, err := d.DecodeState(s.Version, b)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("%+v stored as %s reads back as %+v (%v)", s, b, back, err)
		}
	}
	// A state of a schema 2 log.
	if s, err := d.DecodeState(3, []byte(`{"balance":300}`)); err != nil || s.Balance != 300 || s.Life().Status != wallet.StatusOpen {
		t.Fatalf("a schema 2 state: %+v %v", s, err)
	}
	for _, bad := range []string{`{"balance":"x"}`, `{"balance":1,"status":"sleeping"}`, `{"balance":1,"status":"open"}`, `{"balance":1,"x":1}`, `null1`} {
		if s, err := d.DecodeState(1, []byte(bad)); err == nil {
			t.Errorf("%s read as %+v", bad, s)
		}
	}
}

// TestCheckFindsBrokenRules: verify's per-event rules catch a log that
// breaks the wallet's invariants, whatever wrote it.
func TestCheckFindsBrokenRules(t *testing.T) {
	d := wallet.Domain{}
	limit := int64(10)
	open := wallet.Fold([]wallet.Event{{Type: wallet.Opened, Version: 1, OverdraftLimit: &limit}})
	funded := wallet.Evolve(open, wallet.Event{Type: wallet.Credited, Version: 2, Amount: 5, BalanceAfter: 5})
	frozen := wallet.Evolve(funded, wallet.Event{Type: wallet.Frozen, Version: 3})
	closed := wallet.Evolve(open, wallet.Event{Type: wallet.Closed, Version: 2})
	for _, c := range []struct {
		name   string
		before wallet.State
		e      wallet.Event
	}{
		{"a debit below the overdraft limit", funded, wallet.Event{Type: wallet.Debited, Version: 3, Amount: 16, BalanceAfter: -11}},
		{"a debit from a frozen wallet", frozen, wallet.Event{Type: wallet.Debited, Version: 4, Amount: 1, BalanceAfter: 4}},
		{"a credit to a closed wallet", closed, wallet.Event{Type: wallet.Credited, Version: 3, Amount: 1, BalanceAfter: 1}},
		{"a close with money in the wallet", funded, wallet.Event{Type: wallet.Closed, Version: 3}},
		{"a debit refused for funds that were there", funded, wallet.Event{Type: wallet.DebitRejected, Version: 3, Amount: 15, BalanceAfter: 5, Reason: wallet.ReasonInsufficientFunds}},
		{"a debit refused as frozen on an open wallet", funded, wallet.Event{Type: wallet.DebitRejected, Version: 3, Amount: 1, BalanceAfter: 5, Reason: wallet.ReasonFrozen}},
		{"a balance_after that is not the sum", funded, wallet.Event{Type: wallet.Credited, Version: 3, Amount: 1, BalanceAfter: 7}},
		{"an unfreeze of an open wallet", funded, wallet.Event{Type: wallet.Unfrozen, Version: 3}},
		{"a second open", funded, wallet.Event{Type: wallet.Opened, Version: 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := d.Check(c.before, c.e, wallet.Evolve(c.before, c.e)); err == nil {
				t.Fatalf("Check accepted %+v after %+v", c.e, c.before)
			}
		})
	}
	// And accepts the same kinds of events where the rules hold.
	for _, ok := range []struct {
		before wallet.State
		e      wallet.Event
	}{
		{funded, wallet.Event{Type: wallet.Debited, Version: 3, Amount: 15, BalanceAfter: -10}},
		{frozen, wallet.Event{Type: wallet.Credited, Version: 4, Amount: 1, BalanceAfter: 6}},
		{frozen, wallet.Event{Type: wallet.DebitRejected, Version: 4, Amount: 1, BalanceAfter: 5, Reason: wallet.ReasonFrozen}},
		{closed, wallet.Event{Type: wallet.CreditRejected, Version: 3, Amount: 1, Reason: wallet.ReasonClosed}},
		{open, wallet.Event{Type: wallet.Closed, Version: 2}},
	} {
		if err := d.Check(ok.before, ok.e, wallet.Evolve(ok.before, ok.e)); err != nil {
			t.Errorf("Check refused %+v after %+v: %v", ok.e, ok.before, err)
		}
	}
}

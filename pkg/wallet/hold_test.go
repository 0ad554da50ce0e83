package wallet_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"coffer/pkg/wallet"
)

var h0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// run decides cmds in order from the zero state, each at its At (h0 plus
// its index in seconds if it has none), and returns the state and the
// events; a command refused with an error is recorded as nil.
func run(t *testing.T, cmds ...wallet.Command) (wallet.State, []*wallet.Event, []error) {
	t.Helper()
	var s wallet.State
	evs := make([]*wallet.Event, len(cmds))
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		if c.At.IsZero() {
			c.At = h0.Add(time.Duration(i) * time.Second)
		}
		e, err := wallet.Decide(s, c)
		if err != nil {
			errs[i] = err
			continue
		}
		if err := (wallet.Domain{}).Check(s, e, wallet.Evolve(s, e)); err != nil {
			t.Fatalf("command %d (%+v): Check refuses what Decide made, %+v: %v", i, c, e, err)
		}
		s = wallet.Evolve(s, e)
		evs[i] = &e
	}
	return s, evs, errs
}

// roundTrip holds every event decided (nil: refused) to the codec: each
// reads back as it was stored.
func roundTrip(t *testing.T, evs []*wallet.Event) {
	t.Helper()
	d := wallet.Domain{}
	for _, e := range evs {
		if e == nil {
			continue
		}
		enc, err := d.EncodeEvent(*e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := d.DecodeEvent(enc.Type, enc.Schema, e.Version, e.At, enc.Data)
		if err != nil || !reflect.DeepEqual(back, *e) {
			t.Fatalf("%+v stored as %s reads back as %+v (%v)", *e, enc.Data, back, err)
		}
	}
}

func credit(n int64) wallet.Command { return wallet.Command{Action: wallet.Credit, Amount: n} }
func debit(n int64) wallet.Command  { return wallet.Command{Action: wallet.Debit, Amount: n} }
func hold(id string, n int64) wallet.Command {
	return wallet.Command{Action: wallet.PlaceHold, HoldID: id, Amount: n, ExpiresIn: time.Minute}
}
func capture(id string, n int64) wallet.Command {
	return wallet.Command{Action: wallet.CaptureHold, HoldID: id, Amount: n}
}
func void(id string) wallet.Command { return wallet.Command{Action: wallet.VoidHold, HoldID: id} }

// A hold sets money aside without moving it: the balance stays, what is
// available goes down, and debits and further holds are checked against
// what is available.
func TestHoldLowersWhatIsAvailable(t *testing.T) {
	s, evs, errs := run(t, credit(100), hold("h1", 60), debit(50), hold("h2", 41), hold("h2", 40), debit(1))
	if errs[2] != nil || evs[2].Type != wallet.DebitRejected || evs[2].Reason != wallet.ReasonInsufficientFunds {
		t.Fatalf("a debit of 50 with 40 available: %+v %v", evs[2], errs[2])
	}
	if evs[3].Type != wallet.HoldRejected || evs[3].Reason != wallet.ReasonInsufficientFunds || evs[3].BalanceAfter != 100 {
		t.Fatalf("a hold of 41 with 40 available: %+v", evs[3])
	}
	want := wallet.Event{Type: wallet.Held, Version: 5, At: h0.Add(4 * time.Second), HoldID: "h2", Amount: 40, ExpiresAt: h0.Add(4*time.Second + time.Minute)}
	if !reflect.DeepEqual(*evs[4], want) {
		t.Fatalf("the hold of 40:\n got %+v\nwant %+v", *evs[4], want)
	}
	if evs[5].Type != wallet.DebitRejected {
		t.Fatalf("a debit of 1 with nothing available: %+v", evs[5])
	}
	if s.Balance != 100 || s.Held() != 100 || s.Available() != 0 || len(s.Holds()) != 2 {
		t.Fatalf("state %+v: held %d, available %d", s, s.Held(), s.Available())
	}
}

// A hold ends exactly once: captured (in part: the rest is released),
// voided, or expired; a second end is refused as an event that records
// it, and an unknown hold likewise.
func TestHoldEndsOnce(t *testing.T) {
	s, evs, errs := run(t, credit(100), hold("h1", 60), capture("h1", 25), capture("h1", 1), void("h1"), hold("h2", 10), void("h2"),
		capture("h2", 0), capture("nope", 1), hold("h3", 10), capture("h3", 11), capture("h3", 0))
	c := evs[2]
	if c.Type != wallet.HoldCaptured || c.Captured != 25 || c.Amount != 60 || c.BalanceAfter != 75 || !c.HeldAt.Equal(h0.Add(time.Second)) ||
		!c.ExpiresAt.Equal(h0.Add(time.Second+time.Minute)) {
		t.Fatalf("capture of 25 of 60: %+v", c)
	}
	for _, i := range []int{3, 4, 7, 8} {
		if e := evs[i]; e == nil || e.Type != wallet.CommandRejected || e.Reason != wallet.ReasonHoldNotActive || e.HoldID == "" {
			t.Errorf("command %d on an ended or unknown hold: %+v %v", i, e, errs[i])
		}
	}
	if evs[6].Type != wallet.HoldVoided || evs[6].Amount != 10 {
		t.Errorf("void: %+v", evs[6])
	}
	if !errors.Is(errs[10], wallet.ErrCaptureTooMuch) || evs[11].Type != wallet.HoldCaptured || evs[11].Captured != 10 {
		t.Errorf("capture of 11 from 10: %v; then of all of it: %+v", errs[10], evs[11])
	}
	if s.Balance != 65 || s.Held() != 0 || s.Available() != 65 {
		t.Fatalf("state %+v, held %d", s, s.Held())
	}
}

// Holds follow the lifecycle: no new hold on a frozen wallet, but a hold
// made before the freeze may still be captured; a wallet with active holds
// cannot close; a closed wallet refuses holds.
func TestHoldAndLifecycle(t *testing.T) {
	_, evs, _ := run(t, credit(100), hold("h1", 30), wallet.Command{Action: wallet.Freeze}, hold("h2", 1), capture("h1", 30),
		wallet.Command{Action: wallet.Unfreeze}, hold("h3", 70), wallet.Command{Action: wallet.Close}, void("h3"), debit(70),
		wallet.Command{Action: wallet.Close}, hold("h4", 1))
	if evs[3].Type != wallet.HoldRejected || evs[3].Reason != wallet.ReasonFrozen {
		t.Errorf("hold on a frozen wallet: %+v", evs[3])
	}
	if evs[4].Type != wallet.HoldCaptured || evs[4].BalanceAfter != 70 {
		t.Errorf("capture on a frozen wallet: %+v", evs[4])
	}
	if evs[7].Type != wallet.CommandRejected || evs[7].Reason != wallet.ReasonHoldsActive {
		t.Errorf("close with a hold: %+v", evs[7])
	}
	if evs[10].Type != wallet.Closed || evs[11].Type != wallet.HoldRejected || evs[11].Reason != wallet.ReasonClosed {
		t.Errorf("close, then a hold: %+v %+v", evs[10], evs[11])
	}
}

// Holds are checked against the overdraft limit like debits.
func TestHoldWithinTheOverdraft(t *testing.T) {
	limit := int64(50)
	s, evs, _ := run(t, wallet.Command{Action: wallet.Open, Profile: wallet.Profile{OverdraftLimit: &limit}}, credit(10), hold("h1", 60), hold("h2", 1), capture("h1", 0))
	if evs[2].Type != wallet.Held || evs[3].Type != wallet.HoldRejected || s.Balance != -50 || s.Available() != -50 {
		t.Fatalf("holds to the overdraft limit: %+v %+v, state %+v", evs[2], evs[3], s)
	}
}

// Bad hold commands record nothing.
func TestHoldRefusesBadInput(t *testing.T) {
	active, _, _ := run(t, credit(10), hold("h1", 5))
	for _, c := range []struct {
		name string
		s    wallet.State
		cmd  wallet.Command
		want error
	}{
		{"no id", active, hold("", 1), wallet.ErrInvalidHoldID},
		{"an id with a space", active, hold("a b", 1), wallet.ErrInvalidHoldID},
		{"an id of 65 characters", active, hold(string(make([]byte, 65)), 1), wallet.ErrInvalidHoldID},
		{"zero amount", active, hold("h2", 0), wallet.ErrInvalidAmount},
		{"too large an amount", active, hold("h2", wallet.MaxAmount+1), wallet.ErrInvalidAmount},
		{"no expiry", active, wallet.Command{Action: wallet.PlaceHold, HoldID: "h2", Amount: 1}, wallet.ErrInvalidExpiry},
		{"a fraction of a second", active, wallet.Command{Action: wallet.PlaceHold, HoldID: "h2", Amount: 1, ExpiresIn: 1500 * time.Millisecond}, wallet.ErrInvalidExpiry},
		{"more than the longest expiry", active, wallet.Command{Action: wallet.PlaceHold, HoldID: "h2", Amount: 1, ExpiresIn: wallet.MaxHoldExpiry + time.Second}, wallet.ErrInvalidExpiry},
		{"an active id again", active, hold("h1", 1), wallet.ErrHoldExists},
		{"a negative capture", active, capture("h1", -1), wallet.ErrInvalidAmount},
		{"capture on a wallet nobody used", wallet.State{}, capture("h1", 1), wallet.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cmd.At = h0
			if e, err := wallet.Decide(c.s, c.cmd); !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", e, err, c.want)
			}
		})
	}
}

// The writer's alarm is the earliest expiry; when it comes, every hold due
// expires, earliest first, and the others stay.
func TestHoldsExpire(t *testing.T) {
	d := wallet.Domain{}
	long := wallet.Command{Action: wallet.PlaceHold, HoldID: "long", Amount: 5, ExpiresIn: time.Hour}
	s, _, _ := run(t, credit(100), hold("b", 10), long, hold("a", 20))
	at, cmd, ok := d.Alarm(s)
	if !ok || !at.Equal(h0.Add(time.Second+time.Minute)) || cmd.Action != wallet.ExpireHolds {
		t.Fatalf("alarm %v %+v %v", at, cmd, ok)
	}
	if evs := wallet.DueExpiries(s, at.Add(-time.Nanosecond)); len(evs) != 0 {
		t.Fatalf("expired before their time: %+v", evs)
	}
	due := h0.Add(3*time.Second + time.Minute) // a and b are due, long is not
	evs, refusal := d.Decide(s, cmd, due)
	if refusal != nil || len(evs) != 2 || evs[0].HoldID != "b" || evs[1].HoldID != "a" || evs[0].Version != 5 || evs[1].Version != 6 ||
		evs[0].Type != wallet.HoldExpired || evs[1].Amount != 20 || !evs[1].At.Equal(due) {
		t.Fatalf("expiries: %+v %v", evs, refusal)
	}
	for _, e := range evs {
		if err := d.Check(s, e, wallet.Evolve(s, e)); err != nil {
			t.Fatal(err)
		}
		s = wallet.Evolve(s, e)
	}
	if s.Held() != 5 || s.Balance != 100 {
		t.Fatalf("after the expiries: %+v held %d", s, s.Held())
	}
	if at, _, _ := d.Alarm(s); !at.Equal(h0.Add(2*time.Second + time.Hour)) {
		t.Fatalf("next alarm %v", at)
	}
	if _, refusal := d.Decide(s, cmd, due); refusal == nil {
		t.Fatal("an expiry with nothing due was decided")
	}
}

// Hold events survive the codec, and the state with holds its encoding.
func TestHoldCodecAndState(t *testing.T) {
	d := wallet.Domain{}
	s, evs, _ := run(t, credit(100), hold("h1", 60), capture("h1", 25), hold("h2", 5), void("h2"), hold("h3", 500), hold("h4", 5),
		capture("x", 1))
	exp := wallet.DueExpiries(s, h0.Add(time.Hour))
	all := append(evs, &exp[0])
	roundTrip(t, all)
	b := d.EncodeState(s)
	back, err := d.DecodeState(s.Version, b)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("%+v stored as %s reads back as %+v (%v)", s, b, back, err)
	}
	for _, bad := range []string{`{"balance":1,"holds":{"a b":{"amount":1,"expires_at":1,"held_at":1}}}`, `{"balance":1,"holds":{"h":{"amount":0,"expires_at":1,"held_at":1}}}`} {
		if s, err := d.DecodeState(1, []byte(bad)); err == nil {
			t.Errorf("%s read as %+v", bad, s)
		}
	}
}

// verify's rules for holds catch a log that breaks them.
func TestCheckFindsBrokenHoldRules(t *testing.T) {
	d := wallet.Domain{}
	held, _, _ := run(t, credit(100), hold("h1", 60))
	at := h0.Add(time.Hour)
	ends := func(typ wallet.EventType, amount, captured int64, expires time.Time) wallet.Event {
		return wallet.Event{Type: typ, Version: 3, At: at, HoldID: "h1", Amount: amount, Captured: captured, ExpiresAt: expires,
			HeldAt: h0.Add(time.Second), BalanceAfter: 100 - captured}
	}
	expiry := h0.Add(time.Second + time.Minute)
	for _, c := range []struct {
		name string
		e    wallet.Event
	}{
		{"a hold beyond what is available", wallet.Event{Type: wallet.Held, Version: 3, At: at, HoldID: "h2", Amount: 41, ExpiresAt: at.Add(time.Minute)}},
		{"a hold under an active id", wallet.Event{Type: wallet.Held, Version: 3, At: at, HoldID: "h1", Amount: 1, ExpiresAt: at.Add(time.Minute)}},
		{"a hold that expires when it is made", wallet.Event{Type: wallet.Held, Version: 3, At: at, HoldID: "h2", Amount: 1, ExpiresAt: at}},
		{"a capture of more than was held", ends(wallet.HoldCaptured, 60, 61, expiry)},
		{"a capture of a hold of another amount", ends(wallet.HoldCaptured, 50, 10, expiry)},
		{"a void of a hold nobody made", wallet.Event{Type: wallet.HoldVoided, Version: 3, At: at, HoldID: "zz", Amount: 1, ExpiresAt: expiry}},
		{"an expiry before its time", wallet.Event{Type: wallet.HoldExpired, Version: 3, At: h0.Add(2 * time.Second), HoldID: "h1", Amount: 60, ExpiresAt: expiry, HeldAt: h0.Add(time.Second)}},
		{"a hold refused for funds that were there", wallet.Event{Type: wallet.HoldRejected, Version: 3, At: at, HoldID: "h2", Amount: 40, BalanceAfter: 100, Reason: wallet.ReasonInsufficientFunds}},
		{"a close with a hold", wallet.Event{Type: wallet.Closed, Version: 3}},
		{"a debit of held money", wallet.Event{Type: wallet.Debited, Version: 3, Amount: 41, BalanceAfter: 59}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := d.Check(held, c.e, wallet.Evolve(held, c.e)); err == nil {
				t.Fatalf("Check accepted %+v", c.e)
			}
		})
	}
	if e := ends(wallet.HoldCaptured, 60, 60, expiry); d.Check(held, e, wallet.Evolve(held, e)) != nil {
		t.Fatal("Check refused a whole capture")
	}
}

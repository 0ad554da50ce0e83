package transfer_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/transfer"
)

var (
	t0       = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	from, to = ksuid.New().String(), ksuid.New().String()
)

func request(amount int64) transfer.Command {
	return transfer.Command{Action: transfer.Request, From: from, To: to, Amount: amount, Reference: "invoice 7"}
}

func record(st transfer.Step, code string) transfer.Command {
	return transfer.Command{Action: transfer.Record, Step: st, Code: code}
}

// run decides cmds in order, each a second after the last, checking every
// event as verify would; a command refused with an error records nothing.
func run(t *testing.T, cmds ...transfer.Command) (transfer.State, []transfer.Event, []error) {
	t.Helper()
	var s transfer.State
	evs := make([]transfer.Event, len(cmds))
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		c.At = t0.Add(time.Duration(i) * time.Second)
		e, err := transfer.Decide(s, c)
		if err != nil {
			errs[i] = err
			continue
		}
		if err := transfer.Check(s, e); err != nil {
			t.Fatalf("command %d: Check refuses what Decide made, %+v: %v", i, e, err)
		}
		s, evs[i] = transfer.Evolve(s, e), e
	}
	return s, evs, errs
}

// The three ways a transfer goes: completed; failed when the hold is
// refused; failed when the credit is refused, once the hold is voided.
func TestTransferSteps(t *testing.T) {
	s, evs, errs := run(t, request(50), record(transfer.Held, ""), record(transfer.Credited, ""), record(transfer.Completed, ""))
	if errs[3] != nil || s.Status() != transfer.StatusCompleted || !s.Terminal() || s.Code() != "" || s.Version != 4 {
		t.Fatalf("completed: %+v %v", s, errs)
	}
	if e := evs[2]; e.Step != transfer.Credited || e.From != from || e.To != to || e.Amount != 50 || e.Version != 3 {
		t.Fatalf("every event carries the parties and the amount: %+v", e)
	}
	s, _, _ = run(t, request(50), record(transfer.Failed, "insufficient_funds"))
	if s.Status() != transfer.StatusFailed || s.Code() != "insufficient_funds" {
		t.Fatalf("hold refused: %+v", s)
	}
	s, _, _ = run(t, request(50), record(transfer.Held, ""), record(transfer.CreditRefused, "wallet_closed"))
	if s.Status() != transfer.StatusPending || s.Code() != "" {
		t.Fatalf("credit refused, hold not voided yet: pending, got %+v", s)
	}
	s, _, _ = run(t, request(50), record(transfer.Held, ""), record(transfer.CreditRefused, "wallet_closed"), record(transfer.Failed, "wallet_closed"))
	if s.Status() != transfer.StatusFailed || s.Code() != "wallet_closed" {
		t.Fatalf("credit refused: %+v", s)
	}
}

// Steps follow their order; a request is checked; what is refused
// records nothing.
func TestTransferRefusals(t *testing.T) {
	requested, _, _ := run(t, request(50))
	done, _, _ := run(t, request(50), record(transfer.Failed, "insufficient_funds"))
	for _, c := range []struct {
		name string
		s    transfer.State
		cmd  transfer.Command
		want error
	}{
		{"a request again", requested, request(50), transfer.ErrExists},
		{"to itself", transfer.State{}, transfer.Command{Action: transfer.Request, From: from, To: from, Amount: 1}, transfer.ErrSameWallet},
		{"from no wallet", transfer.State{}, transfer.Command{Action: transfer.Request, From: "x", To: to, Amount: 1}, transfer.ErrInvalidWallet},
		{"nothing", transfer.State{}, request(0), transfer.ErrInvalidAmount},
		{"too much", transfer.State{}, request(transfer.MaxAmount + 1), transfer.ErrInvalidAmount},
		{"a long reference", transfer.State{}, transfer.Command{Action: transfer.Request, From: from, To: to, Amount: 1, Reference: strings.Repeat("r", 256)}, transfer.ErrInvalidReference},
		{"a step of no transfer", transfer.State{}, record(transfer.Held, ""), transfer.ErrNotFound},
		{"credited before held", requested, record(transfer.Credited, ""), transfer.ErrOutOfOrder},
		{"completed before credited", requested, record(transfer.Completed, ""), transfer.ErrOutOfOrder},
		{"a step after the end", done, record(transfer.Held, ""), transfer.ErrOutOfOrder},
		{"a failure without a code", requested, record(transfer.Failed, ""), transfer.ErrInvalidCode},
		{"a step with a code", requested, record(transfer.Held, "x"), transfer.ErrInvalidCode},
		{"a code that is not one", requested, record(transfer.Failed, "Not A Code"), transfer.ErrInvalidCode},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cmd.At = t0
			if e, err := transfer.Decide(c.s, c.cmd); !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", e, err, c.want)
			}
		})
	}
}

// Events and states survive their codecs; the view says where the
// transfer stands.
func TestTransferCodecAndView(t *testing.T) {
	d := transfer.Domain{}
	s, evs, _ := run(t, request(50), record(transfer.Held, ""), record(transfer.CreditRefused, "wallet_closed"), record(transfer.Failed, "wallet_closed"))
	for _, e := range evs {
		enc, err := d.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := d.DecodeEvent(enc.Type, enc.Schema, e.Version, e.At, enc.Data)
		if err != nil || !reflect.DeepEqual(back, e) || enc.Type != string(e.Step) {
			t.Fatalf("%+v stored as %s %s reads back as %+v (%v)", e, enc.Type, enc.Data, back, err)
		}
	}
	b := d.EncodeState(s)
	back, err := d.DecodeState(s.Version, b)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("%+v stored as %s reads back as %+v (%v)", s, b, back, err)
	}
	for _, bad := range []string{
		`{"from":"a","to":"b","amount":1,"steps":[{"step":"held","at":1}]}`,
		`{"from":"a","to":"b","amount":1,"steps":[{"step":"requested","at":1},{"step":"failed","at":2}]}`,
	} {
		if _, err := d.DecodeState(int64(strings.Count(bad, "step\"")), []byte(bad)); err == nil {
			t.Errorf("%s read as a state", bad)
		}
	}
	v := transfer.NewView("T", s)
	if v.Status != transfer.StatusFailed || v.Code != "wallet_closed" || len(v.Steps) != 4 || !v.CreatedAt.Equal(t0) ||
		!v.UpdatedAt.Equal(t0.Add(3*time.Second)) || v.Steps[2].Code != "wallet_closed" {
		t.Fatalf("view %+v", v)
	}
	if _, err := d.DecodeEvent("held", 1, 2, t0, []byte(`{"from":"`+from+`","to":"`+to+`","amount":1,"code":"x"}`)); err == nil {
		t.Fatal("a held with a code was read")
	}
}

// verify's rules catch a log that breaks them.
func TestTransferCheck(t *testing.T) {
	held, _, _ := run(t, request(50), record(transfer.Held, ""))
	for _, c := range []struct {
		name string
		e    transfer.Event
	}{
		{"a step skipped", transfer.Event{Step: transfer.Completed, Version: 3, From: from, To: to, Amount: 50}},
		{"another amount", transfer.Event{Step: transfer.Credited, Version: 3, From: from, To: to, Amount: 51}},
		{"another wallet", transfer.Event{Step: transfer.Credited, Version: 3, From: to, To: from, Amount: 50}},
		{"a refusal without a code", transfer.Event{Step: transfer.CreditRefused, Version: 3, From: from, To: to, Amount: 50}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := transfer.Check(held, c.e); err == nil {
				t.Fatalf("Check accepted %+v", c.e)
			}
		})
	}
}

// A completed transfer is reversed at most once: while a reversal is under
// way or after one completed a second is refused; after one failed, it may
// be asked again; a transfer that did not complete cannot be.
func TestTransferReversalSteps(t *testing.T) {
	r1, r2 := ksuid.New().String(), ksuid.New().String()
	reverse := func(id string) transfer.Command { return transfer.Command{Action: transfer.Reverse, ReversalID: id} }
	end := func(st transfer.Step, id, code string) transfer.Command {
		return transfer.Command{Action: transfer.Record, Step: st, ReversalID: id, Code: code}
	}
	s, evs, errs := run(t, request(50), record(transfer.Held, ""), record(transfer.Credited, ""), record(transfer.Completed, ""),
		reverse(r1), reverse(r2), end(transfer.ReversalFailed, r2, "insufficient_funds"), end(transfer.ReversalFailed, r1, "insufficient_funds"),
		reverse(r2), end(transfer.Reversed, r2, ""), reverse(r1))
	if !errors.Is(errs[5], transfer.ErrAlreadyReversed) || !errors.Is(errs[6], transfer.ErrOutOfOrder) || !errors.Is(errs[10], transfer.ErrAlreadyReversed) {
		t.Fatalf("a second reversal, the end of another: %v", errs)
	}
	if e := evs[4]; e.Step != transfer.ReversalRequested || e.ReversalID != r1 || e.From != from || e.Amount != 50 {
		t.Fatalf("reversal requested: %+v", e)
	}
	if id, st, _, ok := s.Reversal(); !ok || id != r2 || st != transfer.StatusCompleted || s.Status() != transfer.StatusCompleted {
		t.Fatalf("after the second reversal: %s %s %v, status %s", id, st, ok, s.Status())
	}
	pending, _, _ := run(t, request(50))
	if _, err := transfer.Decide(pending, reverse(r1)); !errors.Is(err, transfer.ErrNotCompleted) {
		t.Fatalf("a reversal of a pending transfer: %v", err)
	}
	if _, err := transfer.Decide(transfer.State{}, reverse(r1)); !errors.Is(err, transfer.ErrNotFound) {
		t.Fatalf("a reversal of no transfer: %v", err)
	}
	// The reversal itself carries the transfer it reverses on every event.
	rs, revs, _ := run(t, transfer.Command{Action: transfer.Request, From: to, To: from, Amount: 50, ReversalOf: r1}, record(transfer.Failed, "insufficient_funds"))
	if rs.ReversalOf != r1 || revs[1].ReversalOf != r1 {
		t.Fatalf("a reversal: %+v %+v", rs, revs[1])
	}
	d := transfer.Domain{}
	for _, e := range append(evs, revs...) {
		if e.Step == "" {
			continue
		}
		enc, _ := d.EncodeEvent(e)
		back, err := d.DecodeEvent(enc.Type, enc.Schema, e.Version, e.At, enc.Data)
		if err != nil || !reflect.DeepEqual(back, e) {
			t.Fatalf("%+v stored as %s reads back as %+v (%v)", e, enc.Data, back, err)
		}
	}
	if back, err := d.DecodeState(s.Version, d.EncodeState(s)); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("state %+v reads back as %+v (%v)", s, back, err)
	}
	requested, _, _ := run(t, request(50), record(transfer.Held, ""), record(transfer.Credited, ""), record(transfer.Completed, ""), reverse(r1))
	if err := transfer.Check(requested, transfer.Event{Step: transfer.Reversed, Version: 6, From: from, To: to, Amount: 50, ReversalID: r2}); err == nil {
		t.Fatal("Check accepted the end of a reversal nobody asked for")
	}
}

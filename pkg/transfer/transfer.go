// Package transfer is Coffer's transfer domain: money moved from one wallet
// to another, which may live in another partition and another writer, so
// that no one transaction can move it. A transfer is a stream of its own,
// transfer.<id>, that records the steps of its process manager (Manager):
//
//	requested → held → credited → completed
//	    │          └──→ credit_refused → failed
//	    └──→ failed
//
// held: the money is set aside on the wallet it leaves (a hold that never
// expires); credited: the wallet it reaches has it (transfer_in); completed:
// the hold is captured (transfer_out). If the hold is refused (insufficient
// funds, a frozen or closed wallet) the transfer fails at once; if the
// credit is refused (a closed wallet, an overflow) the hold is voided and
// then the transfer fails. Each step is a command on one stream under an
// idempotency key derived from the transfer's id, so a step repeated after
// a crash applies once.
//
// A completed transfer may be reversed, once: its reversal is a transfer of
// its own the other way (reversal_of names the original), which the process
// manager requests when the original records reversal_requested, and whose
// end it records on the original (reversed, or reversal_failed, after which
// it may be reversed again):
//
//	completed → reversal_requested → reversed
//	                 └──→ reversal_failed → reversal_requested ...
//
// Money is in flight between credited and completed: the wallet it reaches
// has it and the wallet it leaves still counts it in its balance (held).
// Everywhere else the sum of the balances is what external credits and
// debits made it.
//
// Like package wallet, Decide and Evolve do no I/O and read no clock.
package transfer

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/segmentio/ksuid"
)

// Name is the transfer domain's name: transfer.<id> in Redis,
// cmd.transfer.<id>.<action> and evt.transfer.<id>.<step> on NATS.
const Name = "transfer"

// MaxAmount is the most one transfer moves, the wallet's bound.
const MaxAmount int64 = 1_000_000_000_000_000

// MaxReferenceLen bounds a transfer's reference, in bytes of UTF-8.
const MaxReferenceLen = 255

// Errors of commands that record nothing.
var (
	ErrInvalidWallet    = errors.New("invalid wallet id")
	ErrSameWallet       = errors.New("a transfer needs two different wallets")
	ErrInvalidAmount    = errors.New("amount must be a whole number of minor units from 1 to 10^15")
	ErrInvalidReference = errors.New("invalid reference")
	ErrExists           = errors.New("the transfer exists already")
	ErrNotFound         = errors.New("no such transfer")
	ErrOutOfOrder       = errors.New("step out of order")
	ErrInvalidCode      = errors.New("invalid code")
	ErrUnknownAction    = errors.New("unknown action")
	ErrAlreadyReversed  = errors.New("the transfer is reversed already, or its reversal is under way")
	ErrNotCompleted     = errors.New("only a completed transfer can be reversed")
)

// Action names what a command asks for.
type Action string

// The actions: a client's request, the process manager's record of a step
// it took, and a client's reversal of a completed transfer.
const (
	Request Action = "request"
	Record  Action = "record"
	Reverse Action = "reverse"
)

// Actions lists the actions a command on the bus may name.
var Actions = []Action{Request, Record, Reverse}

// Step is one step of a transfer, and the type of the event recording it.
type Step string

// The steps, in the order they happen.
const (
	Requested     Step = "requested"
	Held          Step = "held"
	Credited      Step = "credited"
	CreditRefused Step = "credit_refused"
	Completed     Step = "completed"
	Failed        Step = "failed"
	// A completed transfer's reversal, itself a transfer (ReversalID).
	ReversalRequested Step = "reversal_requested"
	Reversed          Step = "reversed"
	ReversalFailed    Step = "reversal_failed"
)

// Steps lists every step.
var Steps = []Step{Requested, Held, Credited, CreditRefused, Completed, Failed, ReversalRequested, Reversed, ReversalFailed}

// next says which steps may follow a step ("" for a transfer nobody
// requested).
var next = map[Step][]Step{
	"":                {Requested},
	Requested:         {Held, Failed},
	Held:              {Credited, CreditRefused},
	Credited:          {Completed},
	CreditRefused:     {Failed},
	Completed:         {ReversalRequested},
	ReversalRequested: {Reversed, ReversalFailed},
	ReversalFailed:    {ReversalRequested},
}

// Status is what a client is told of a transfer: pending until it
// completes or fails.
type Status string

// The statuses.
const (
	StatusPending   Status = "pending"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// Command asks for Action on a transfer: the transfer's parties, amount
// and reference for a request (and for a reversal's, the transfer it
// reverses, ReversalOf); the Step taken, and for a refusal the Code it was
// refused with, for a record (and for a reversal's end, ReversalID); the
// id the reversal will have, ReversalID, for a reverse. At is when it is
// decided.
type Command struct {
	Action     Action
	From, To   string
	Amount     int64
	Reference  string
	ReversalOf string
	OrderID    string
	Step       Step
	Code       string
	ReversalID string
	At         time.Time
}

// Event records a step at Version of the transfer, at At. Every event
// carries the parties, the amount and, for a reversal, the transfer it
// reverses, so that the process manager acts on an event alone; the
// request carries the reference, a refusal its Code, a reversal's steps on
// the original the ReversalID.
type Event struct {
	Step       Step
	Version    int64
	At         time.Time
	From, To   string
	Amount     int64
	Reference  string
	ReversalOf string
	OrderID    string
	Code       string
	ReversalID string
}

// StepAt is a step taken, when (Unix nanoseconds), its code, and the
// reversal it is about.
type StepAt struct {
	Step       Step
	At         int64
	Code       string
	ReversalID string
}

// State is a transfer after Version events; the zero State is one nobody
// has requested.
type State struct {
	Version    int64
	From, To   string
	Amount     int64
	Reference  string
	ReversalOf string
	OrderID    string
	Steps      []StepAt
}

// Last is the newest step ("" for none).
func (s State) Last() StepAt {
	if len(s.Steps) == 0 {
		return StepAt{}
	}
	return s.Steps[len(s.Steps)-1]
}

// Status is where the transfer stands for a client: a transfer that
// completed stays completed, reversed or not (Reversal says).
func (s State) Status() Status {
	switch s.Last().Step {
	case Completed, ReversalRequested, Reversed, ReversalFailed:
		return StatusCompleted
	case Failed:
		return StatusFailed
	}
	return StatusPending
}

// Reversal is the newest reversal of a completed transfer: its id, and
// pending, completed (the money went back) or failed (with its code); ok
// is false if none was asked for.
func (s State) Reversal() (id string, st Status, code string, ok bool) {
	for i := len(s.Steps) - 1; i >= 0; i-- {
		switch x := s.Steps[i]; x.Step {
		case ReversalRequested:
			return x.ReversalID, StatusPending, "", true
		case Reversed:
			return x.ReversalID, StatusCompleted, "", true
		case ReversalFailed:
			return x.ReversalID, StatusFailed, x.Code, true
		}
	}
	return "", "", "", false
}

// Terminal reports whether the transfer has completed or failed.
func (s State) Terminal() bool { return s.Status() != StatusPending }

// Code is why a transfer failed ("" unless it did).
func (s State) Code() string {
	if s.Status() == StatusFailed {
		return s.Last().Code
	}
	return ""
}

// CheckID accepts a KSUID.
func CheckID(id string) error {
	if _, err := ksuid.Parse(id); err != nil {
		return fmt.Errorf("transfer id %q is not a KSUID", id)
	}
	return nil
}

// check validates a request's own fields.
func (c Command) checkRequest() error {
	for _, w := range []string{c.From, c.To} {
		if _, err := ksuid.Parse(w); err != nil {
			return fmt.Errorf("wallet id %q is not a KSUID: %w", w, ErrInvalidWallet)
		}
	}
	switch {
	case c.From == c.To:
		return ErrSameWallet
	case c.Amount <= 0 || c.Amount > MaxAmount:
		return ErrInvalidAmount
	case c.OrderID != "" && (CheckID(c.OrderID) != nil || c.ReversalOf != ""):
		return fmt.Errorf("order id %q: %w", c.OrderID, ErrInvalidReference)
	case len(c.Reference) > MaxReferenceLen || !utf8.ValidString(c.Reference):
		return fmt.Errorf("reference must be UTF-8 of at most %d bytes: %w", MaxReferenceLen, ErrInvalidReference)
	}
	return nil
}

// CheckCode accepts what a refusal's code looks like: 1 to 64 lower-case
// letters and '_'.
func CheckCode(code string) error {
	if code == "" || len(code) > 64 {
		return ErrInvalidCode
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return fmt.Errorf("%q: %w", code, ErrInvalidCode)
		}
	}
	return nil
}

// refused reports whether a step records a refusal, and so has a code.
func refused(st Step) bool { return st == CreditRefused || st == Failed || st == ReversalFailed }

// aboutReversal reports whether a step names a reversal.
func aboutReversal(st Step) bool {
	return st == ReversalRequested || st == Reversed || st == ReversalFailed
}

// Decide returns the event that records c against s.
func Decide(s State, c Command) (Event, error) {
	e := Event{Version: s.Version + 1, At: c.At, From: s.From, To: s.To, Amount: s.Amount, ReversalOf: s.ReversalOf, OrderID: s.OrderID}
	switch c.Action {
	case Request:
		if err := c.checkRequest(); err != nil {
			return Event{}, err
		}
		if c.ReversalOf != "" && CheckID(c.ReversalOf) != nil {
			return Event{}, fmt.Errorf("reversal_of %q: %w", c.ReversalOf, ErrNotFound)
		}
		if s.Version > 0 {
			return Event{}, ErrExists
		}
		e.Step, e.From, e.To, e.Amount, e.Reference, e.ReversalOf, e.OrderID = Requested, c.From, c.To, c.Amount, c.Reference, c.ReversalOf, c.OrderID
		return e, nil
	case Reverse:
		if CheckID(c.ReversalID) != nil {
			return Event{}, fmt.Errorf("reversal id %q: %w", c.ReversalID, ErrInvalidWallet)
		}
		switch s.Last().Step {
		case "":
			return Event{}, ErrNotFound
		case Completed, ReversalFailed:
			e.Step, e.ReversalID = ReversalRequested, c.ReversalID
			return e, nil
		case ReversalRequested, Reversed:
			return Event{}, ErrAlreadyReversed
		}
		return Event{}, ErrNotCompleted
	case Record:
		if refused(c.Step) != (c.Code != "") {
			return Event{}, fmt.Errorf("step %q with code %q: %w", c.Step, c.Code, ErrInvalidCode)
		}
		if aboutReversal(c.Step) != (c.ReversalID != "") || c.Step == ReversalRequested {
			return Event{}, fmt.Errorf("step %q with reversal %q: %w", c.Step, c.ReversalID, ErrOutOfOrder)
		}
		if c.Code != "" {
			if err := CheckCode(c.Code); err != nil {
				return Event{}, err
			}
		}
		if s.Version == 0 {
			return Event{}, ErrNotFound
		}
		if !slices.Contains(next[s.Last().Step], c.Step) {
			return Event{}, fmt.Errorf("%s after %s: %w", c.Step, s.Last().Step, ErrOutOfOrder)
		}
		if rid, _, _, _ := s.Reversal(); aboutReversal(c.Step) && c.ReversalID != rid {
			return Event{}, fmt.Errorf("the end of reversal %s; the one under way is %s: %w", c.ReversalID, rid, ErrOutOfOrder)
		}
		e.Step, e.Code, e.ReversalID = c.Step, c.Code, c.ReversalID
		return e, nil
	}
	return Event{}, fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
}

// Evolve returns s with e applied.
func Evolve(s State, e Event) State {
	if e.Step == Requested {
		s.From, s.To, s.Amount, s.Reference, s.ReversalOf, s.OrderID = e.From, e.To, e.Amount, e.Reference, e.ReversalOf, e.OrderID
	}
	s.Version = e.Version
	// A fresh slice: a State is a value, and a copy must not change with it.
	s.Steps = append(slices.Clip(s.Steps), StepAt{Step: e.Step, At: e.At.UnixNano(), Code: e.Code, ReversalID: e.ReversalID})
	return s
}

// Check returns what is wrong with e following before: a step out of
// order, parties or an amount that changed, a code where none belongs.
func Check(before State, e Event) error {
	switch {
	case !slices.Contains(next[before.Last().Step], e.Step):
		return fmt.Errorf("%s after %q", e.Step, before.Last().Step)
	case refused(e.Step) != (e.Code != ""):
		return fmt.Errorf("%s with code %q", e.Step, e.Code)
	case e.Step != Requested && (e.From != before.From || e.To != before.To || e.Amount != before.Amount || e.ReversalOf != before.ReversalOf || e.OrderID != before.OrderID):
		return fmt.Errorf("%s of %d from %s to %s; the transfer is of %d from %s to %s", e.Step, e.Amount, e.From, e.To, before.Amount, before.From, before.To)
	case aboutReversal(e.Step) != (e.ReversalID != ""):
		return fmt.Errorf("%s names reversal %q", e.Step, e.ReversalID)
	case e.Step == Reversed || e.Step == ReversalFailed:
		if rid, _, _, _ := before.Reversal(); rid != e.ReversalID {
			return fmt.Errorf("%s of reversal %s; the one under way is %s", e.Step, e.ReversalID, rid)
		}
	case e.Step == Requested:
		return Command{From: e.From, To: e.To, Amount: e.Amount, Reference: e.Reference, OrderID: e.OrderID}.checkRequest()
	}
	return nil
}

// Package wallet is Coffer's pure domain: the commands a wallet accepts, the
// events it records, and the two functions that connect them. Decide turns a
// state and a command into the event that records the outcome; Evolve folds an
// event into a state. Nothing here does I/O, reads a clock or draws random
// numbers, so every rule is testable as given events / when command / then
// event or error.
package wallet

import (
	"errors"
	"fmt"
	"math"
)

// MaxAmount is the largest amount one command may move, in minor units (10^15,
// ten trillion in a two-decimal currency).
const MaxAmount int64 = 1_000_000_000_000_000

// Errors returned by Decide. A command that yields one of these changes nothing
// and is not recorded.
var (
	ErrInvalidAmount   = errors.New("amount must be a whole number of minor units from 1 to 10^15")
	ErrUnknownAction   = errors.New("unknown action")
	ErrBalanceOverflow = errors.New("balance would overflow")
)

// Action names what a command asks for.
type Action string

// The actions a wallet accepts.
const (
	Credit Action = "credit"
	Debit  Action = "debit"
)

// ParseAction returns the Action named s, or ErrUnknownAction.
func ParseAction(s string) (Action, error) {
	switch Action(s) {
	case Credit, Debit:
		return Action(s), nil
	}
	return "", fmt.Errorf("%q: %w", s, ErrUnknownAction)
}

// Command asks a wallet to move Amount minor units.
type Command struct {
	Action Action
	Amount int64
}

// State is a wallet after Version events. The zero State is a wallet nobody
// has used yet: every valid wallet id starts there.
type State struct {
	Balance int64
	Version int64
}

// EventType names an event. The names are part of the stored log and the wire:
// they are spelled out here, never derived from Go type names.
type EventType string

// The events a wallet records.
const (
	Credited      EventType = "credited"
	Debited       EventType = "debited"
	DebitRejected EventType = "debit_rejected"
)

// Reason says why a command was refused.
type Reason string

// ReasonInsufficientFunds is the reason a debit larger than the balance is refused.
const ReasonInsufficientFunds Reason = "insufficient_funds"

// Event is one fact in a wallet's log. Version is the wallet version the event
// creates; BalanceAfter is the balance once it is applied, so a reader of the
// log never has to fold to learn it.
type Event struct {
	Type         EventType
	Version      int64
	Amount       int64
	BalanceAfter int64
	Reason       Reason
}

// Applied reports whether the event moved money (a rejection does not).
func (e Event) Applied() bool { return e.Type == Credited || e.Type == Debited }

// Decide returns the event that records the outcome of c against s. A debit
// larger than the balance is not an error: it is recorded as a DebitRejected
// event that leaves the balance as it was. Invalid amounts, unknown actions
// and credits that would overflow return an error and no event.
func Decide(s State, c Command) (Event, error) {
	if c.Amount <= 0 || c.Amount > MaxAmount {
		return Event{}, ErrInvalidAmount
	}
	next := s.Version + 1
	switch c.Action {
	case Credit:
		if s.Balance > math.MaxInt64-c.Amount {
			return Event{}, ErrBalanceOverflow
		}
		return Event{Type: Credited, Version: next, Amount: c.Amount, BalanceAfter: s.Balance + c.Amount}, nil
	case Debit:
		if c.Amount > s.Balance {
			return Event{Type: DebitRejected, Version: next, Amount: c.Amount, BalanceAfter: s.Balance, Reason: ReasonInsufficientFunds}, nil
		}
		return Event{Type: Debited, Version: next, Amount: c.Amount, BalanceAfter: s.Balance - c.Amount}, nil
	}
	return Event{}, fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
}

// Evolve returns s with e applied.
func Evolve(s State, e Event) State {
	s.Version = e.Version
	switch e.Type {
	case Credited:
		s.Balance += e.Amount
	case Debited:
		s.Balance -= e.Amount
	}
	return s
}

// Fold applies events in order to the zero State.
func Fold(events []Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

package wallet

import (
	"errors"
	"fmt"
	"maps"
	"math"

	"github.com/segmentio/ksuid"
)

// Reversals: a credit or a debit taken back by a compensating entry, linked
// to it, at most once. The transaction is named by its event id; the
// engine reads that event from the wallet's log and hands it to Decide
// (Command.Original), so a reversal takes back exactly what the log says.
// Taking back a credit is a debit: refused as one, and recorded
// (reversal_rejected), when the wallet does not have it available, is
// frozen or closed. Taking back a debit is a credit: a closed wallet
// refuses it.

// Errors of reversals that record nothing.
var (
	ErrInvalidTransactionID = errors.New("invalid transaction id")
	ErrTransactionNotFound  = errors.New("the wallet has no such transaction")
	ErrNotReversible        = errors.New("only a credit or a debit can be reversed")
	ErrAlreadyReversed      = errors.New("the transaction is reversed already")
)

// Reversed reports whether the credit or debit at version v was reversed.
func (s State) Reversed(v int64) bool { _, ok := s.reversed[v]; return ok }

// decideReverse decides a reversal of c.Original.
func decideReverse(s State, c Command, next Event) (Event, error) {
	if _, err := ksuid.Parse(c.Reverses); err != nil {
		return Event{}, fmt.Errorf("%q: %w", c.Reverses, ErrInvalidTransactionID)
	}
	o := c.Original
	switch {
	case o == nil:
		return Event{}, fmt.Errorf("%s: %w", c.Reverses, ErrTransactionNotFound)
	case o.Type != Credited && o.Type != Debited:
		return Event{}, fmt.Errorf("%s is a %s: %w", c.Reverses, o.Type, ErrNotReversible)
	case s.Reversed(o.Version):
		return Event{}, fmt.Errorf("%s: %w", c.Reverses, ErrAlreadyReversed)
	}
	next.Reverses, next.ReversedVersion, next.ReversedType, next.Amount = c.Reverses, o.Version, o.Type, o.Amount
	refuse := func(r Reason) (Event, error) {
		next.Type, next.Reason, next.BalanceAfter = ReversalRejected, r, s.Balance
		return next, nil
	}
	st := s.status()
	if st == StatusClosed {
		return refuse(ReasonClosed)
	}
	if o.Type == Debited {
		if s.Balance > math.MaxInt64-o.Amount {
			return Event{}, ErrBalanceOverflow
		}
		next.Type, next.BalanceAfter = Reversal, s.Balance+o.Amount
		return next, nil
	}
	switch {
	case st == StatusFrozen:
		return refuse(ReasonFrozen)
	case s.Available()-o.Amount < -s.overdraftLimit():
		return refuse(ReasonInsufficientFunds)
	}
	next.Type, next.BalanceAfter = Reversal, s.Balance-o.Amount
	return next, nil
}

// sign is +1 for a reversal that puts money in (of a debit), -1 for one
// that takes it out (of a credit).
func (e Event) sign() int64 {
	if e.ReversedType == Credited {
		return -1
	}
	return 1
}

// evolveReversal applies a reversal.
func evolveReversal(s State, e Event) State {
	s.Balance += e.sign() * e.Amount
	m := maps.Clone(s.reversed)
	if m == nil {
		m = map[int64]struct{}{}
	}
	m[e.ReversedVersion] = struct{}{}
	s.reversed = m
	return s
}

// checkReversal holds a reversal, or its refusal, to the rules; the
// refusal's reasons are held to them with the others, in Check.
func checkReversal(before State, e Event, after State) error {
	if e.Type != Reversal && e.Type != ReversalRejected {
		return nil
	}
	switch {
	case e.ReversedType != Credited && e.ReversedType != Debited:
		return fmt.Errorf("%s of a %s", e.Type, e.ReversedType)
	case e.ReversedVersion < 1 || e.ReversedVersion > before.Version:
		return fmt.Errorf("%s of version %d, at version %d", e.Type, e.ReversedVersion, e.Version)
	case before.Reversed(e.ReversedVersion):
		return fmt.Errorf("%s of version %d, reversed already", e.Type, e.ReversedVersion)
	case e.Type == Reversal && e.ReversedType == Credited && before.status() != StatusOpen:
		return fmt.Errorf("takes back %d from a %s wallet", e.Amount, before.status())
	case e.Type == Reversal && e.ReversedType == Credited && after.Available() < -before.overdraftLimit():
		return fmt.Errorf("takes back %d to %d available, below the overdraft limit of %d", e.Amount, after.Available(), before.overdraftLimit())
	case e.Type == ReversalRejected && e.ReversedType == Debited && e.Reason != ReasonClosed:
		return fmt.Errorf("refuses to give back a debit for %s", e.Reason)
	}
	return nil
}

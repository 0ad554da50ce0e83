package wallet

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/segmentio/ksuid"
)

// A transfer between two wallets is never one wallet's command: its process
// manager (package transfer) drives it as commands on each, every one under
// an idempotency key derived from the transfer's id. On the wallet the money
// leaves: a hold TransferHoldID(id), which never expires, then either its
// capture (TransferOut, listed as transfer_out) or its void. On the wallet
// it reaches: TransferIn (transfer_in). Every outcome of a leg that depends
// on the wallet's state is recorded, refusals too (transfer_in_rejected), so
// that a repeated step always learns the first outcome.

// ErrInvalidTransferID is returned for a transfer id that is not a KSUID.
var ErrInvalidTransferID = errors.New("invalid transfer id")

const transferHoldPrefix = "transfer:"

// TransferHoldID is the id of the hold transfer id places on the wallet its
// money leaves.
func TransferHoldID(id string) string { return transferHoldPrefix + id }

// IsTransferHold reports whether a hold id is a transfer's, which only its
// transfer may place and end.
func IsTransferHold(holdID string) bool { return strings.HasPrefix(holdID, transferHoldPrefix) }

// CheckTransferID accepts a KSUID.
func CheckTransferID(id string) error {
	if _, err := ksuid.Parse(id); err != nil {
		return fmt.Errorf("transfer id %q is not a KSUID: %w", id, ErrInvalidTransferID)
	}
	return nil
}

// checkLeg validates a transfer leg's own fields: the transfer, the other
// wallet (a KSUID, not this one's business beyond that), and for money in,
// the amount.
func (c Command) checkLeg() error {
	if err := CheckTransferID(c.TransferID); err != nil {
		return err
	}
	if _, err := ksuid.Parse(c.Counterpart); err != nil {
		return fmt.Errorf("counterpart %q is not a wallet id: %w", c.Counterpart, ErrInvalidTransferID)
	}
	if _, err := ksuid.Parse(c.OrderID); c.OrderID != "" && err != nil {
		return fmt.Errorf("order %q is not an order id: %w", c.OrderID, ErrInvalidTransferID)
	}
	if c.Action == TransferIn && (c.Amount <= 0 || c.Amount > MaxAmount) {
		return ErrInvalidAmount
	}
	if c.Action == TransferOut && c.Amount != 0 {
		return fmt.Errorf("transfer_out captures the whole hold, it takes no amount: %w", ErrInvalidAmount)
	}
	return nil
}

// decideLeg decides a transfer's money in, and its capture on the wallet
// the money leaves; s is not closed (Decide refuses everything on a closed
// wallet first). Money in that would overflow the balance is refused and
// recorded, unlike a credit's overflow: the transfer must learn the same
// outcome each time it asks.
func decideLeg(s State, c Command, next Event) Event {
	next.TransferID, next.Counterpart, next.OrderID = c.TransferID, c.Counterpart, c.OrderID
	if c.Action == TransferIn {
		next.Amount = c.Amount
		if s.Balance > math.MaxInt64-c.Amount {
			next.Type, next.Reason, next.BalanceAfter = TransferInRejected, ReasonBalanceOverflow, s.Balance
			return next
		}
		next.Type, next.BalanceAfter = TransferredIn, s.Balance+c.Amount
		return next
	}
	holdID := TransferHoldID(c.TransferID)
	h, ok := s.Hold(holdID)
	if !ok {
		next.TransferID, next.Counterpart, next.OrderID = "", "", ""
		next.Type, next.Action, next.Reason, next.HoldID = CommandRejected, c.Action, ReasonHoldNotActive, holdID
		return next
	}
	next.Type, next.HoldID, next.Amount, next.BalanceAfter, next.HeldAt = TransferredOut, holdID, h.Amount, s.Balance-h.Amount, time.Unix(0, h.HeldAt).UTC()
	return next
}

// checkLegEvent holds a transfer's capture to the rules; its refusals are
// held to them with the others, in Check.
func checkLegEvent(before State, e Event) error {
	switch e.Type {
	case TransferredOut:
		h, ok := before.Hold(TransferHoldID(e.TransferID))
		switch {
		case e.HoldID != TransferHoldID(e.TransferID):
			return fmt.Errorf("transfer_out of transfer %s names hold %q", e.TransferID, e.HoldID)
		case !ok:
			return fmt.Errorf("transfer_out of transfer %s, whose hold is not active", e.TransferID)
		case h.Amount != e.Amount:
			return fmt.Errorf("transfer_out of %d; transfer %s held %d", e.Amount, e.TransferID, h.Amount)
		}
	}
	return nil
}

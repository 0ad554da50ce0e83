// Package order is Coffer's order domain: a wallet buys items. An order is
// a stream of its own, order.<id>, that records the steps its process
// manager (Manager) takes across the items, the wallets and a transfer,
// each of which may live in another partition:
//
//	placed → reserved → paid → completed
//	   │         └──→ payment_failed → failed
//	   └──→ failed
//
// reserved: every line's units are reserved on its item (package item), at
// the item's price then, which makes the total; paid: the total moved from
// the buyer's wallet to the shop's by a transfer (package transfer: a hold,
// the shop's credit, the capture), which names the order; completed: every
// reservation turned into a sale. If an item has too few in stock (or is
// unknown) the reservations made are released and the order fails, naming
// the item; if the payment fails (insufficient funds, a frozen wallet) the
// reservations are released and the order fails with the payment's code.
// Money only ever moves by the transfer, so the sum of the balances is
// what it was; units only ever move between an item's stock, reserved and
// sold.
//
// Like package wallet, Decide and Evolve do no I/O and read no clock.
package order

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/item"
	"coffer/pkg/transfer"
)

// Name is the order domain's name: order.<id> in Redis,
// cmd.order.<id>.<action> and evt.order.<id>.<step> on NATS.
const Name = "order"

// DefaultShopWalletID is the wallet orders pay into unless wallet_server
// is told another (SHOP_WALLET_ID).
const DefaultShopWalletID = "2ShopWa11etCofferDefau1t000"

// MaxLines bounds the lines of one order.
const MaxLines = 100

// Errors of commands that record nothing.
var (
	ErrInvalidID     = errors.New("invalid order id")
	ErrInvalidWallet = errors.New("invalid wallet id")
	ErrSameWallet    = errors.New("the shop cannot buy from itself")
	ErrInvalidLines  = errors.New("an order has 1 to 100 lines, each an item id once and a quantity from 1 to 10^9")
	ErrExists        = errors.New("the order exists already")
	ErrNotFound      = errors.New("no such order")
	ErrOutOfOrder    = errors.New("step out of order")
	ErrInvalidRecord = errors.New("invalid record")
	ErrUnknownAction = errors.New("unknown action")
)

// Action names what a command asks for.
type Action string

// The actions: a client's placing of an order, and the process manager's
// record of a step it took.
const (
	Place  Action = "place"
	Record Action = "record"
)

// Actions lists the actions a command on the bus may name.
var Actions = []Action{Place, Record}

// Step is one step of an order, and the type of the event recording it.
type Step string

// The steps, in the order they happen.
const (
	Placed        Step = "placed"
	Reserved      Step = "reserved"
	Paid          Step = "paid"
	Completed     Step = "completed"
	PaymentFailed Step = "payment_failed"
	Failed        Step = "failed"
)

// Steps lists every step.
var Steps = []Step{Placed, Reserved, Paid, Completed, PaymentFailed, Failed}

// next says which steps may follow a step ("" for an order nobody placed).
var next = map[Step][]Step{
	"":            {Placed},
	Placed:        {Reserved, Failed},
	Reserved:      {Paid, PaymentFailed},
	Paid:          {Completed},
	PaymentFailed: {Failed},
}

// Status is what a client is told of an order: pending until it completes
// or fails.
type Status string

// The statuses.
const (
	StatusPending   Status = "pending"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// Line is one line of an order: Quantity units of an item, at Price each
// once reserved (0 before).
type Line struct {
	ItemID   string
	Quantity int64
	Price    int64
}

// Command asks for Action on an order: the buyer's wallet, the shop's and
// the lines for a place; the Step taken for a record, with for reserved the
// priced Lines, for a failure its Code (and the ItemID it is about, if
// one), for paid the TransferID. At is when it is decided.
type Command struct {
	Action     Action
	Wallet     string
	Shop       string
	Lines      []Line
	Step       Step
	Code       string
	ItemID     string
	TransferID string
	At         time.Time
}

// Event records a step at Version of the order, at At. Every event carries
// the wallets and the lines (priced from reserved on) and the total, so
// that the process manager acts on an event alone.
type Event struct {
	Step       Step
	Version    int64
	At         time.Time
	Wallet     string
	Shop       string
	Lines      []Line
	Total      int64
	Code       string
	ItemID     string
	TransferID string
}

// StepAt is a step taken, when (Unix nanoseconds), and for a failure its
// code and the item it is about.
type StepAt struct {
	Step   Step
	At     int64
	Code   string
	ItemID string
}

// State is an order after Version events; the zero State is one nobody has
// placed.
type State struct {
	Version    int64
	Wallet     string
	Shop       string
	Lines      []Line
	Total      int64
	TransferID string
	Steps      []StepAt
}

// Last is the newest step ("" for none).
func (s State) Last() StepAt {
	if len(s.Steps) == 0 {
		return StepAt{}
	}
	return s.Steps[len(s.Steps)-1]
}

// Status is where the order stands for a client.
func (s State) Status() Status {
	switch s.Last().Step {
	case Completed:
		return StatusCompleted
	case Failed:
		return StatusFailed
	}
	return StatusPending
}

// Terminal reports whether the order has ended.
func (s State) Terminal() bool { return s.Status() != StatusPending }

// Failure is the code the order failed with and the item it names, if any.
func (s State) Failure() (code, itemID string) {
	if l := s.Last(); l.Step == Failed {
		return l.Code, l.ItemID
	}
	return "", ""
}

// CheckID accepts a KSUID.
func CheckID(id string) error {
	if _, err := ksuid.Parse(id); err != nil {
		return fmt.Errorf("%q is not a KSUID: %w", id, ErrInvalidID)
	}
	return nil
}

// PaymentID is the id of the transfer that pays for order id: the same
// whoever derives it, so that the step requesting it applies once.
func PaymentID(id string) string {
	sum := sha256.Sum256([]byte("coffer order payment\x00" + id))
	k, _ := ksuid.FromBytes(sum[:20]) // any 20 bytes are a KSUID
	return k.String()
}

// Total is the sum of the lines at their prices; ok is false past what one
// transfer may move.
func Total(lines []Line) (total int64, ok bool) {
	for _, l := range lines {
		if l.Price > item.MaxPrice || l.Quantity > item.MaxQuantity {
			return 0, false
		}
		total += l.Price * l.Quantity // each at most 10^21 / 10^3: checked before it could overflow
		if total > transfer.MaxAmount {
			return 0, false
		}
	}
	return total, true
}

// checkPlace validates a place's wallets and lines.
func (c Command) checkPlace() error {
	if err := checkWallets(c.Wallet, c.Shop); err != nil {
		return err
	}
	return CheckLines(c.Lines, false)
}

// checkWallets accepts two different wallet ids.
func checkWallets(buyer, shop string) error {
	for _, w := range []string{buyer, shop} {
		if _, err := ksuid.Parse(w); err != nil {
			return fmt.Errorf("%q: %w", w, ErrInvalidWallet)
		}
	}
	if buyer == shop {
		return ErrSameWallet
	}
	return nil
}

// CheckLines accepts 1 to MaxLines lines, each of an item not named
// before, of 1 to item.MaxQuantity units, priced (1 to item.MaxPrice) if
// priced, else not.
func CheckLines(lines []Line, priced bool) error {
	if len(lines) == 0 || len(lines) > MaxLines {
		return fmt.Errorf("%d lines: %w", len(lines), ErrInvalidLines)
	}
	seen := make(map[string]bool, len(lines))
	for i, l := range lines {
		bad := item.CheckID(l.ItemID) != nil || seen[l.ItemID] || item.CheckQuantity(l.Quantity) != nil ||
			(priced && item.CheckPrice(l.Price) != nil) || (!priced && l.Price != 0)
		if bad {
			return fmt.Errorf("line %d (%s × %d at %d): %w", i+1, l.ItemID, l.Quantity, l.Price, ErrInvalidLines)
		}
		seen[l.ItemID] = true
	}
	return nil
}

// Decide returns the event that records c against s, or the error of a
// command that records nothing.
func Decide(s State, c Command) (Event, error) {
	e := Event{Version: s.Version + 1, At: c.At, Wallet: s.Wallet, Shop: s.Shop, Lines: s.Lines, Total: s.Total, TransferID: s.TransferID}
	switch c.Action {
	case Place:
		if err := c.checkPlace(); err != nil {
			return Event{}, err
		}
		if s.Version > 0 {
			return Event{}, ErrExists
		}
		e.Step, e.Wallet, e.Shop, e.Lines = Placed, c.Wallet, c.Shop, c.Lines
		return e, nil
	case Record:
		if s.Version == 0 {
			return Event{}, ErrNotFound
		}
		if !slices.Contains(next[s.Last().Step], c.Step) {
			return Event{}, fmt.Errorf("%s after %s: %w", c.Step, s.Last().Step, ErrOutOfOrder)
		}
		e.Step = c.Step
		switch c.Step {
		case Reserved:
			total, ok := Total(c.Lines)
			if err := CheckLines(c.Lines, true); err != nil || !ok || !sameItems(c.Lines, s.Lines) {
				return Event{}, fmt.Errorf("reserved lines %v for %v: %w", c.Lines, s.Lines, ErrInvalidRecord)
			}
			e.Lines, e.Total = c.Lines, total
		case Paid:
			if _, err := ksuid.Parse(c.TransferID); err != nil {
				return Event{}, fmt.Errorf("paid by transfer %q: %w", c.TransferID, ErrInvalidRecord)
			}
			e.TransferID = c.TransferID
		case PaymentFailed, Failed:
			if c.Code == "" {
				return Event{}, fmt.Errorf("%s without a code: %w", c.Step, ErrInvalidRecord)
			}
			e.Code, e.ItemID = c.Code, c.ItemID
		}
		return e, nil
	}
	return Event{}, fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
}

// sameItems reports whether priced names the items and quantities of
// lines, in the same order.
func sameItems(priced, lines []Line) bool {
	return slices.EqualFunc(priced, lines, func(a, b Line) bool { return a.ItemID == b.ItemID && a.Quantity == b.Quantity })
}

// Evolve returns s with e applied.
func Evolve(s State, e Event) State {
	s.Version = e.Version
	s.Wallet, s.Shop, s.Lines, s.Total, s.TransferID = e.Wallet, e.Shop, e.Lines, e.Total, e.TransferID
	steps := make([]StepAt, len(s.Steps), len(s.Steps)+1)
	copy(steps, s.Steps)
	s.Steps = append(steps, StepAt{Step: e.Step, At: e.At.UnixNano(), Code: e.Code, ItemID: e.ItemID})
	return s
}

// Check returns what is wrong with e following an order at before, for
// verify to run over a log.
func Check(before State, e Event) error {
	switch {
	case e.Version != before.Version+1:
		return fmt.Errorf("%s at version %d after version %d", e.Step, e.Version, before.Version)
	case !slices.Contains(next[before.Last().Step], e.Step):
		return fmt.Errorf("%s after %s", e.Step, before.Last().Step)
	case e.Step != Placed && (e.Wallet != before.Wallet || e.Shop != before.Shop):
		return fmt.Errorf("%s names wallets %s → %s; the order's are %s → %s", e.Step, e.Wallet, e.Shop, before.Wallet, before.Shop)
	case e.Step != Placed && !sameItems(e.Lines, before.Lines):
		return fmt.Errorf("%s changes the lines %v to %v", e.Step, before.Lines, e.Lines)
	}
	priced := e.Step != Placed && (e.Step != Failed || before.Last().Step != Placed)
	if err := CheckLines(e.Lines, priced); err != nil {
		return fmt.Errorf("%s: %w", e.Step, err)
	}
	if total, ok := Total(e.Lines); !ok || (priced && total != e.Total) || (!priced && e.Total != 0) {
		return fmt.Errorf("%s: total %d of lines %v", e.Step, e.Total, e.Lines)
	}
	paidNow := e.Step == Paid && before.TransferID == "" && e.TransferID != ""
	if !paidNow && (e.Step == Paid || e.TransferID != before.TransferID) {
		return fmt.Errorf("%s with payment %q (before %q)", e.Step, e.TransferID, before.TransferID)
	}
	return nil
}

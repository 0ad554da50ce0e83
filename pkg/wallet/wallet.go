// Package wallet is Coffer's wallet domain: the commands a wallet accepts,
// the events it records, and the two functions that connect them. Decide
// turns a state and a command into the event that records the outcome;
// Evolve folds an event into a state. Nothing here does I/O, reads a clock
// or draws random numbers (the time of a command is given with it), so every
// rule is testable as given events / when command / then event or error.
// domain.go puts the domain into the engine (package engine).
//
// A wallet is open from its first event: opened explicitly (POST /wallet,
// with an owner, metadata and an overdraft limit) or, as before wallets had
// a lifecycle, by its first credit or debit. A frozen wallet takes credits
// and refuses debits; a closed one refuses everything, and only a wallet at
// balance 0 may close. A business refusal is an event (debit_rejected,
// credit_rejected, command_rejected), as a debit refused for funds always
// was; a malformed command is an error and records nothing.
package wallet

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"time"
	"unicode/utf8"
)

// MaxAmount is the largest amount one command may move, in minor units (10^15,
// ten trillion in a two-decimal currency), and the largest overdraft limit.
const MaxAmount int64 = 1_000_000_000_000_000

// Bounds of what a wallet's owner and metadata may hold.
const (
	MaxOwnerLen       = 255  // bytes of UTF-8
	MaxMetadataKeys   = 32   // entries
	MaxMetadataKeyLen = 64   // bytes
	MaxMetadataValLen = 512  // bytes
	MaxMetadataBytes  = 4096 // keys and values together
)

// Errors returned by Decide. A command that yields one of these changes nothing
// and is not recorded.
var (
	ErrInvalidAmount    = errors.New("amount must be a whole number of minor units from 1 to 10^15")
	ErrUnknownAction    = errors.New("unknown action")
	ErrBalanceOverflow  = errors.New("balance would overflow")
	ErrInvalidOwner     = errors.New("invalid owner")
	ErrInvalidMetadata  = errors.New("invalid metadata")
	ErrInvalidOverdraft = errors.New("invalid overdraft limit")
	ErrNotFound         = errors.New("no such wallet")
	ErrExists           = errors.New("the wallet exists already")
	ErrNothingToChange  = errors.New("nothing to change")
)

// Action names what a command asks for.
type Action string

// The actions a wallet accepts.
const (
	Credit      Action = "credit"
	Debit       Action = "debit"
	Open        Action = "open"
	Update      Action = "update"
	Freeze      Action = "freeze"
	Unfreeze    Action = "unfreeze"
	Close       Action = "close"
	PlaceHold   Action = "hold"
	CaptureHold Action = "capture"
	VoidHold    Action = "void"
	// TransferIn and TransferOut are the legs of a transfer between
	// wallets, sent by its process manager (transfer.go): money in, and
	// the capture of the transfer's hold on the wallet it leaves.
	TransferIn  Action = "transfer_in"
	TransferOut Action = "transfer_out"
	// Reverse takes back a credit or a debit, named by its event id
	// (reversal.go).
	Reverse Action = "reverse"
	// ExpireHolds ends the holds that are due: the writer's own command,
	// at the time the wallet asks for it (Domain.Alarm), never sent on
	// the bus.
	ExpireHolds Action = "expire"
)

// Actions lists every action a command on the bus may name, in the order
// the API documents them.
var Actions = []Action{Open, Credit, Debit, Update, Freeze, Unfreeze, Close, PlaceHold, CaptureHold, VoidHold, TransferIn, TransferOut, Reverse}

// ParseAction returns the Action named s, or ErrUnknownAction.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("%q: %w", s, ErrUnknownAction)
}

// Status is where a wallet is in its lifecycle.
type Status string

// The statuses. The zero Status is a wallet nobody has used, which is open
// to credits and debits.
const (
	StatusOpen   Status = "open"
	StatusFrozen Status = "frozen"
	StatusClosed Status = "closed"
)

// Profile is what open sets and update changes: a nil field is left as it
// is. In an update, Metadata is merged into the wallet's (RFC 7396): a key
// with a value sets it, a key with nil removes it.
type Profile struct {
	Owner          *string
	Metadata       map[string]*string
	OverdraftLimit *int64
}

// Command asks a wallet for Action: Amount minor units for a credit, a
// debit, a hold or a transfer's money in (for a capture, the part to
// capture, 0 for all of it), Profile for open and update, HoldID for hold,
// capture and void, and ExpiresIn for a hold. TransferID names the
// transfer a hold, a void or a leg is for (its hold is TransferHoldID),
// Counterpart the other wallet of a leg, OrderID the order a leg pays
// for, if any. At is when it is decided, the
// time a first event records as the wallet's creation.
type Command struct {
	Action      Action
	Amount      int64
	Profile     Profile
	HoldID      string
	ExpiresIn   time.Duration
	TransferID  string
	Counterpart string
	OrderID     string
	// Reverses is the transaction (event id) a reversal takes back, and
	// Original that event as the log holds it, nil if the wallet has none
	// with that id (the engine reads it: Domain.Attach).
	Reverses string
	Original *Event
	At       time.Time
}

// State is a wallet after Version events. The zero State is a wallet nobody
// has used yet: every valid wallet id starts there. The writer holds one for
// every wallet in memory, so it is small: the lifecycle sits behind a
// pointer and the active holds in a map, both nil for the many wallets that
// only take credits and debits, and both replaced by Evolve rather than
// changed (a State is a value: a copy of it must not change with the
// original).
type State struct {
	Balance int64
	Version int64
	Created int64 // when the first event happened, in Unix nanoseconds
	life    *Lifecycle
	holds   map[string]Hold // the active holds by id
	// The versions of the credits and debits reversed, each at most once.
	reversed map[int64]struct{}
}

// Lifecycle is what a wallet has beyond its money.
type Lifecycle struct {
	Status         Status
	Opened         bool // an open command made it, not a first credit or debit
	Owner          string
	Metadata       map[string]string
	OverdraftLimit int64
}

// Life returns s's lifecycle: for a wallet with no event, or one that only
// ever took credits and debits, open without an owner.
func (s State) Life() Lifecycle {
	if s.life == nil {
		return Lifecycle{Status: StatusOpen}
	}
	return *s.life
}

// WithLife returns s with its lifecycle set to l.
func (s State) WithLife(l Lifecycle) State {
	if l.Status == "" {
		l.Status = StatusOpen
	}
	if l.Status == StatusOpen && !l.Opened && l.Owner == "" && len(l.Metadata) == 0 && l.OverdraftLimit == 0 {
		s.life = nil
	} else {
		s.life = &l
	}
	return s
}

func (s State) status() Status        { return s.Life().Status }
func (s State) overdraftLimit() int64 { return s.Life().OverdraftLimit }
func (s State) metadata() map[string]string {
	if s.life == nil {
		return nil
	}
	return s.life.Metadata
}

// CreatedAt is when the wallet's first event happened (zero if unknown).
func (s State) CreatedAt() time.Time {
	if s.Created == 0 {
		return time.Time{}
	}
	return time.Unix(0, s.Created).UTC()
}

// Exists reports whether the wallet has any event.
func (s State) Exists() bool { return s.Version > 0 }

// EventType names an event. The names are part of the stored log and the wire:
// they are spelled out here, never derived from Go type names.
type EventType string

// The events a wallet records.
const (
	Credited        EventType = "credited"
	Debited         EventType = "debited"
	DebitRejected   EventType = "debit_rejected"
	CreditRejected  EventType = "credit_rejected"
	Opened          EventType = "opened"
	Updated         EventType = "updated"
	Frozen          EventType = "frozen"
	Unfrozen        EventType = "unfrozen"
	Closed          EventType = "closed"
	CommandRejected EventType = "command_rejected"
	Held            EventType = "held"
	HoldCaptured    EventType = "hold_captured"
	HoldVoided      EventType = "hold_voided"
	HoldExpired     EventType = "hold_expired"
	HoldRejected    EventType = "hold_rejected"
	// A transfer's legs (transfer.go).
	TransferredIn      EventType = "transfer_in"
	TransferredOut     EventType = "transfer_out"
	TransferInRejected EventType = "transfer_in_rejected"
	// A credit or a debit taken back, or the refusal to (reversal.go).
	Reversal         EventType = "reversal"
	ReversalRejected EventType = "reversal_rejected"
)

// Reason says why a command was refused.
type Reason string

// The reasons a command is refused as a business outcome.
const (
	ReasonInsufficientFunds Reason = "insufficient_funds"
	ReasonFrozen            Reason = "wallet_frozen"
	ReasonClosed            Reason = "wallet_closed"
	ReasonNotFrozen         Reason = "wallet_not_frozen"
	ReasonBalanceNotZero    Reason = "balance_not_zero"
	ReasonHoldNotActive     Reason = "hold_not_active"
	ReasonHoldsActive       Reason = "holds_active"
	ReasonBalanceOverflow   Reason = "balance_overflow"
)

// Event is one fact in a wallet's log. Version is the wallet version the
// event creates; At when it happened (from the envelope, not its data). A
// credit, a debit and their refusals carry Amount and BalanceAfter, the
// balance once the event is applied, so a reader of the log never has to
// fold to learn it; opened and updated carry the Profile fields they set,
// as values (Metadata whole, as it is after the event); a refusal carries
// its Reason, and command_rejected the Action it refused. A hold's events
// carry its HoldID, Amount and ExpiresAt, the events that end it also when
// it was made (HeldAt) and a capture what it Captured and BalanceAfter, so
// that each says all there is to know of the hold. A transfer's legs carry
// its TransferID and the Counterpart wallet, and the OrderID it pays for.
type Event struct {
	Type         EventType
	Version      int64
	At           time.Time
	Amount       int64
	BalanceAfter int64
	Reason       Reason
	Action       Action

	Owner          *string
	Metadata       map[string]string // nil: unchanged
	OverdraftLimit *int64

	HoldID    string
	Captured  int64
	ExpiresAt time.Time // zero for a transfer's hold, which never expires
	HeldAt    time.Time

	TransferID  string
	Counterpart string
	OrderID     string

	// A reversal's: the transaction it takes back, its version and type.
	Reverses        string
	ReversedVersion int64
	ReversedType    EventType
}

// Applied reports whether the event moved money (a rejection does not).
func (e Event) Applied() bool {
	return e.Type == Credited || e.Type == Debited || e.Type == HoldCaptured || e.Type == TransferredIn || e.Type == TransferredOut ||
		e.Type == Reversal
}

// Rejection reports whether the event records a refused command.
func (e Event) Rejection() bool {
	return e.Type == DebitRejected || e.Type == CreditRejected || e.Type == CommandRejected || e.Type == HoldRejected ||
		e.Type == TransferInRejected || e.Type == ReversalRejected
}

// Decide returns the event that records the outcome of c against s. A
// refusal that is a business outcome (a debit larger than what is
// available, anything on a closed wallet, a debit on a frozen one, closing
// a wallet with money in it) is not an error: it is recorded as a
// rejection that leaves the wallet as it was. Invalid amounts and
// profiles, unknown actions, credits that would overflow, and lifecycle
// commands on a wallet nobody has used return an error and no event.
func Decide(s State, c Command) (Event, error) {
	next := Event{Version: s.Version + 1, At: c.At}
	reject := func(typ EventType, r Reason) (Event, error) {
		next.Type, next.Reason = typ, r
		if typ == CommandRejected {
			next.Action = c.Action
			if c.Action == CaptureHold || c.Action == VoidHold {
				next.HoldID = c.HoldID
			}
			if c.Action == TransferOut {
				next.HoldID = TransferHoldID(c.TransferID)
			}
		} else {
			next.Amount, next.BalanceAfter = c.Amount, s.Balance
		}
		return next, nil
	}
	switch c.Action {
	case Credit, Debit:
		if c.Amount <= 0 || c.Amount > MaxAmount {
			return Event{}, ErrInvalidAmount
		}
	case Open, Update:
		if err := c.Profile.check(c.Action == Update); err != nil {
			return Event{}, err
		}
	case PlaceHold, CaptureHold, VoidHold:
		if err := c.checkHold(); err != nil {
			return Event{}, err
		}
	case TransferIn, TransferOut:
		if err := c.checkLeg(); err != nil {
			return Event{}, err
		}
	case Reverse:
		return decideReverse(s, c, next)
	case Freeze, Unfreeze, Close:
	default:
		return Event{}, fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
	}
	switch {
	case c.Action == Open && s.Exists():
		return Event{}, ErrExists
	case c.Action != Open && c.Action != Credit && c.Action != Debit && c.Action != PlaceHold && c.Action != TransferIn && !s.Exists():
		return Event{}, ErrNotFound
	}
	if s.status() == StatusClosed {
		switch c.Action {
		case Credit:
			return reject(CreditRejected, ReasonClosed)
		case Debit:
			return reject(DebitRejected, ReasonClosed)
		case PlaceHold:
			next.HoldID, next.ExpiresAt = c.HoldID, c.expiresAt()
			return reject(HoldRejected, ReasonClosed)
		case TransferIn:
			next.TransferID, next.Counterpart, next.OrderID = c.TransferID, c.Counterpart, c.OrderID
			return reject(TransferInRejected, ReasonClosed)
		}
		return reject(CommandRejected, ReasonClosed)
	}
	switch c.Action {
	case Credit:
		if s.Balance > math.MaxInt64-c.Amount {
			return Event{}, ErrBalanceOverflow
		}
		next.Type, next.Amount, next.BalanceAfter = Credited, c.Amount, s.Balance+c.Amount
	case Debit:
		switch {
		case s.status() == StatusFrozen:
			return reject(DebitRejected, ReasonFrozen)
		case s.Available()-c.Amount < -s.overdraftLimit():
			return reject(DebitRejected, ReasonInsufficientFunds)
		}
		next.Type, next.Amount, next.BalanceAfter = Debited, c.Amount, s.Balance-c.Amount
	case Open:
		next.Type = Opened
		next.Owner, next.OverdraftLimit = c.Profile.Owner, c.Profile.OverdraftLimit
		if c.Profile.Metadata != nil {
			next.Metadata = c.Profile.merge(nil)
		}
	case Update:
		next.Type = Updated
		next.Owner, next.OverdraftLimit = c.Profile.Owner, c.Profile.OverdraftLimit
		if c.Profile.Metadata != nil {
			next.Metadata = c.Profile.merge(s.metadata())
			if len(metadataBytes(next.Metadata)) > MaxMetadataBytes || len(next.Metadata) > MaxMetadataKeys {
				return Event{}, fmt.Errorf("the metadata would hold %d keys and %d bytes, at most %d and %d: %w",
					len(next.Metadata), len(metadataBytes(next.Metadata)), MaxMetadataKeys, MaxMetadataBytes, ErrInvalidMetadata)
			}
		}
	case Freeze:
		if s.status() == StatusFrozen {
			return reject(CommandRejected, ReasonFrozen)
		}
		next.Type = Frozen
	case Unfreeze:
		if s.status() != StatusFrozen {
			return reject(CommandRejected, ReasonNotFrozen)
		}
		next.Type = Unfrozen
	case Close:
		switch {
		case s.holds != nil:
			return reject(CommandRejected, ReasonHoldsActive)
		case s.Balance != 0:
			return reject(CommandRejected, ReasonBalanceNotZero)
		}
		next.Type = Closed
	case PlaceHold, CaptureHold, VoidHold:
		return decideHold(s, c, next)
	case TransferIn, TransferOut:
		return decideLeg(s, c, next), nil
	}
	return next, nil
}

// check validates a profile; an update must change something.
func (p Profile) check(update bool) error {
	if update && p.Owner == nil && p.Metadata == nil && p.OverdraftLimit == nil {
		return ErrNothingToChange
	}
	if p.Owner != nil && (len(*p.Owner) > MaxOwnerLen || !utf8.ValidString(*p.Owner)) {
		return fmt.Errorf("owner must be UTF-8 of at most %d bytes: %w", MaxOwnerLen, ErrInvalidOwner)
	}
	if p.OverdraftLimit != nil && (*p.OverdraftLimit < 0 || *p.OverdraftLimit > MaxAmount) {
		return fmt.Errorf("overdraft_limit must be a whole number from 0 to 10^15: %w", ErrInvalidOverdraft)
	}
	if len(p.Metadata) > MaxMetadataKeys {
		return fmt.Errorf("metadata may hold at most %d keys: %w", MaxMetadataKeys, ErrInvalidMetadata)
	}
	total := 0
	for k, v := range p.Metadata {
		switch {
		case k == "" || len(k) > MaxMetadataKeyLen || !utf8.ValidString(k):
			return fmt.Errorf("metadata key %q: want 1 to %d bytes of UTF-8: %w", k, MaxMetadataKeyLen, ErrInvalidMetadata)
		case v == nil && !update:
			return fmt.Errorf("metadata key %q: a new wallet's metadata values are strings: %w", k, ErrInvalidMetadata)
		case v != nil && (len(*v) > MaxMetadataValLen || !utf8.ValidString(*v)):
			return fmt.Errorf("metadata value of %q: want at most %d bytes of UTF-8: %w", k, MaxMetadataValLen, ErrInvalidMetadata)
		}
		total += len(k)
		if v != nil {
			total += len(*v)
		}
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("metadata holds %d bytes, at most %d: %w", total, MaxMetadataBytes, ErrInvalidMetadata)
	}
	return nil
}

// merge returns base with the profile's metadata merged in; an empty
// result is nil.
func (p Profile) merge(base map[string]string) map[string]string {
	out := maps.Clone(base)
	for k, v := range p.Metadata {
		if v == nil {
			delete(out, k)
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = *v
	}
	if len(out) == 0 {
		return map[string]string{} // an explicit, empty metadata: it changes the wallet's
	}
	return out
}

func metadataBytes(m map[string]string) []byte {
	var b []byte
	for k, v := range m {
		b = append(append(b, k...), v...)
	}
	return b
}

// Evolve returns s with e applied.
func Evolve(s State, e Event) State {
	if s.Version == 0 && !e.At.IsZero() {
		s.Created = e.At.UnixNano()
	}
	s.Version = e.Version
	switch e.Type {
	case Credited:
		s.Balance += e.Amount
	case Debited:
		s.Balance -= e.Amount
	case Held, HoldCaptured, HoldVoided, HoldExpired:
		s = evolveHold(s, e)
	case TransferredIn:
		s.Balance += e.Amount
	case TransferredOut:
		s.Balance -= e.Amount
		s = s.withHolds(func(m map[string]Hold) { delete(m, TransferHoldID(e.TransferID)) })
	case Reversal:
		s = evolveReversal(s, e)
	case Opened, Updated, Frozen, Unfrozen, Closed:
		l := s.Life()
		switch e.Type {
		case Opened, Updated:
			l.Opened = l.Opened || e.Type == Opened
			if e.Owner != nil {
				l.Owner = *e.Owner
			}
			if e.OverdraftLimit != nil {
				l.OverdraftLimit = *e.OverdraftLimit
			}
			if e.Metadata != nil {
				l.Metadata = nil
				if len(e.Metadata) > 0 {
					l.Metadata = maps.Clone(e.Metadata)
				}
			}
		case Frozen:
			l.Status = StatusFrozen
		case Unfrozen:
			l.Status = StatusOpen
		case Closed:
			l.Status = StatusClosed
		}
		s = s.WithLife(l)
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

package wallet

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Holds: money set aside on a wallet for a payment that is not final yet
// (the first step of a transfer). A hold does not change the balance — the
// money is still the wallet's — but lowers what is available, and every
// debit and every new hold is checked against what is available. A hold
// ends exactly once: captured (the captured part is debited, the rest
// released), voided, or expired by the writer at its expiry.

// MaxHoldExpiry bounds how long a hold may last, whatever the server allows.
const MaxHoldExpiry = 366 * 24 * time.Hour

// Errors of hold commands that record nothing.
var (
	ErrInvalidHoldID  = errors.New("invalid hold id")
	ErrInvalidExpiry  = errors.New("invalid expiry")
	ErrCaptureTooMuch = errors.New("capture exceeds the hold")
	ErrHoldExists     = errors.New("the hold exists already")
	ErrNothingDue     = errors.New("no hold is due to expire")
	ErrHoldOwned      = errors.New("the hold belongs to a transfer")
)

// MaxHoldIDLen bounds a hold id: the server makes KSUIDs, and a process
// manager ids derived from its operation's.
const MaxHoldIDLen = 64

// Hold is an active hold: Amount set aside until ExpiresAt, since HeldAt
// (both Unix nanoseconds).
type Hold struct {
	Amount    int64 `json:"amount"`
	ExpiresAt int64 `json:"expires_at"`
	HeldAt    int64 `json:"held_at"`
}

// HoldStatus is where a hold is: held, then one of the three ends.
type HoldStatus string

// The statuses of a hold.
const (
	StatusHeld     HoldStatus = "held"
	StatusCaptured HoldStatus = "captured"
	StatusVoided   HoldStatus = "voided"
	StatusExpired  HoldStatus = "expired"
)

// Held is how much of the balance active holds set aside.
func (s State) Held() int64 {
	var n int64
	for _, h := range s.holds {
		n += h.Amount
	}
	return n
}

// Available is the balance less what is held.
func (s State) Available() int64 { return s.Balance - s.Held() }

// Holds returns the wallet's active holds by id (a copy).
func (s State) Holds() map[string]Hold { return maps.Clone(s.holds) }

// Hold returns the active hold id.
func (s State) Hold(id string) (Hold, bool) {
	h, ok := s.holds[id]
	return h, ok
}

// nextExpiry is the earliest expiry of an active hold.
func (s State) nextExpiry() (int64, bool) {
	var first int64
	for _, h := range s.holds {
		if h.ExpiresAt == 0 {
			continue // a transfer's: it never expires
		}
		if first == 0 || h.ExpiresAt < first {
			first = h.ExpiresAt
		}
	}
	return first, first != 0
}

// withHolds returns s with its active holds changed by change, on a copy:
// a State is a value, and a copy of it must not change with the original.
func (s State) withHolds(change func(map[string]Hold)) State {
	m := maps.Clone(s.holds)
	if m == nil {
		m = map[string]Hold{}
	}
	change(m)
	if len(m) == 0 {
		m = nil
	}
	s.holds = m
	return s
}

// CheckHoldID accepts 1 to MaxHoldIDLen letters, digits, '_', '-' and ':'.
func CheckHoldID(id string) error {
	if id == "" || len(id) > MaxHoldIDLen {
		return fmt.Errorf("hold id must be 1 to %d characters: %w", MaxHoldIDLen, ErrInvalidHoldID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("hold id %q: letters, digits, '_', '-' and ':' only: %w", id, ErrInvalidHoldID)
		}
	}
	return nil
}

// checkHold validates a hold command's own fields. A transfer's hold is
// placed and voided only by commands naming the transfer, and never
// expires: its process manager ends it, by capture (TransferOut) or void.
func (c Command) checkHold() error {
	if err := CheckHoldID(c.HoldID); err != nil {
		return err
	}
	if c.TransferID != "" {
		if err := CheckTransferID(c.TransferID); err != nil {
			return err
		}
		if c.HoldID != TransferHoldID(c.TransferID) || c.Action == CaptureHold {
			return fmt.Errorf("transfer %s holds and voids %q only: %w", c.TransferID, TransferHoldID(c.TransferID), ErrInvalidHoldID)
		}
	} else if IsTransferHold(c.HoldID) {
		return fmt.Errorf("hold %q: %w; it ends when the transfer does", c.HoldID, ErrHoldOwned)
	}
	switch c.Action {
	case PlaceHold:
		if c.Amount <= 0 || c.Amount > MaxAmount {
			return ErrInvalidAmount
		}
		if c.TransferID != "" {
			if c.ExpiresIn != 0 {
				return fmt.Errorf("a transfer's hold does not expire: %w", ErrInvalidExpiry)
			}
			break
		}
		if c.ExpiresIn < time.Second || c.ExpiresIn > MaxHoldExpiry || c.ExpiresIn%time.Second != 0 {
			return fmt.Errorf("expires_in must be whole seconds from 1 to %d: %w", int64(MaxHoldExpiry/time.Second), ErrInvalidExpiry)
		}
	case CaptureHold:
		if c.Amount < 0 || c.Amount > MaxAmount { // 0: all of it
			return ErrInvalidAmount
		}
	}
	return nil
}

// expiresAt is when a hold placed by c expires: zero, never, for a
// transfer's.
func (c Command) expiresAt() time.Time {
	if c.ExpiresIn == 0 {
		return time.Time{}
	}
	return c.At.Add(c.ExpiresIn).UTC()
}

// unixOrZero is t in Unix nanoseconds, 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeOrZero is the inverse of unixOrZero.
func timeOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// decideHold decides hold, capture and void; s is not closed (Decide
// refuses everything on a closed wallet first).
func decideHold(s State, c Command, next Event) (Event, error) {
	next.HoldID = c.HoldID
	switch c.Action {
	case PlaceHold:
		next.Amount, next.ExpiresAt = c.Amount, c.expiresAt()
		next.Type = Held
		switch {
		case hasHold(s, c.HoldID):
			// A second hold under an id in use is the first one's id
			// reused, not a new hold: refuse it, recording nothing.
			return Event{}, fmt.Errorf("hold %q is active already: %w", c.HoldID, ErrHoldExists)
		case s.status() == StatusFrozen:
			next.Type, next.Reason, next.BalanceAfter = HoldRejected, ReasonFrozen, s.Balance
		case s.Available()-c.Amount < -s.overdraftLimit():
			next.Type, next.Reason, next.BalanceAfter = HoldRejected, ReasonInsufficientFunds, s.Balance
		}
		return next, nil
	case CaptureHold, VoidHold:
		h, ok := s.Hold(c.HoldID)
		if !ok {
			next.Type, next.Action, next.Reason = CommandRejected, c.Action, ReasonHoldNotActive
			return next, nil
		}
		next.Amount, next.ExpiresAt, next.HeldAt = h.Amount, timeOrZero(h.ExpiresAt), time.Unix(0, h.HeldAt).UTC()
		if c.Action == VoidHold {
			next.Type = HoldVoided
			return next, nil
		}
		captured := c.Amount
		if captured == 0 {
			captured = h.Amount
		}
		if captured > h.Amount {
			return Event{}, fmt.Errorf("capture of %d from a hold of %d: %w", captured, h.Amount, ErrCaptureTooMuch)
		}
		next.Type, next.Captured, next.BalanceAfter = HoldCaptured, captured, s.Balance-captured
		return next, nil
	}
	return Event{}, fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
}

func hasHold(s State, id string) bool { _, ok := s.holds[id]; return ok }

// DueExpiries returns the events that end every hold of s whose expiry is at or
// before at, earliest first (ties by hold id), versions following s's; none
// if no hold is due.
func DueExpiries(s State, at time.Time) []Event {
	type due struct {
		id string
		h  Hold
	}
	var ds []due
	for id, h := range s.holds {
		if h.ExpiresAt != 0 && h.ExpiresAt <= at.UnixNano() {
			ds = append(ds, due{id, h})
		}
	}
	slices.SortFunc(ds, func(a, b due) int { return cmp.Or(cmp.Compare(a.h.ExpiresAt, b.h.ExpiresAt), cmp.Compare(a.id, b.id)) })
	out := make([]Event, len(ds))
	for i, d := range ds {
		out[i] = Event{Type: HoldExpired, Version: s.Version + int64(i) + 1, At: at, HoldID: d.id, Amount: d.h.Amount,
			ExpiresAt: time.Unix(0, d.h.ExpiresAt).UTC(), HeldAt: time.Unix(0, d.h.HeldAt).UTC()}
	}
	return out
}

// evolveHold applies a hold event.
func evolveHold(s State, e Event) State {
	switch e.Type {
	case Held:
		return s.withHolds(func(m map[string]Hold) {
			m[e.HoldID] = Hold{Amount: e.Amount, ExpiresAt: unixOrZero(e.ExpiresAt), HeldAt: e.At.UnixNano()}
		})
	case HoldCaptured:
		s.Balance -= e.Captured
		fallthrough
	case HoldVoided, HoldExpired:
		return s.withHolds(func(m map[string]Hold) { delete(m, e.HoldID) })
	}
	return s
}

// checkHoldEvent holds a hold event to the rules, before → after; a
// refused hold is held to them with the other refusals, in Check.
func checkHoldEvent(before State, e Event, after State) error {
	st := before.status()
	switch e.Type {
	case Held:
		switch {
		case st != StatusOpen:
			return fmt.Errorf("holds %d on a %s wallet", e.Amount, st)
		case hasHold(before, e.HoldID):
			return fmt.Errorf("holds %q, which is held already", e.HoldID)
		case after.Available() < -before.overdraftLimit():
			return fmt.Errorf("holds %d, leaving %d available, below the overdraft limit of %d", e.Amount, after.Available(), before.overdraftLimit())
		case IsTransferHold(e.HoldID) != e.ExpiresAt.IsZero():
			return fmt.Errorf("holds %q until %s: a transfer's hold, and only a transfer's, never expires", e.HoldID, e.ExpiresAt)
		case !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(e.At):
			return fmt.Errorf("holds %q until %s, not after it is made", e.HoldID, e.ExpiresAt)
		}
	case HoldCaptured, HoldVoided, HoldExpired:
		h, ok := before.Hold(e.HoldID)
		switch {
		case !ok:
			return fmt.Errorf("%s %q, which is not active", e.Type, e.HoldID)
		case e.Type != HoldVoided && IsTransferHold(e.HoldID):
			return fmt.Errorf("%s %q, a transfer's hold, which only its transfer captures", e.Type, e.HoldID)
		case h.Amount != e.Amount || h.ExpiresAt != unixOrZero(e.ExpiresAt):
			return fmt.Errorf("%s %q of %d until %s; it held %d until %s", e.Type, e.HoldID, e.Amount, e.ExpiresAt, h.Amount, time.Unix(0, h.ExpiresAt).UTC())
		case e.Type == HoldCaptured && (e.Captured <= 0 || e.Captured > h.Amount):
			return fmt.Errorf("captures %d of a hold of %d", e.Captured, h.Amount)
		case e.Type == HoldExpired && e.At.UnixNano() < h.ExpiresAt:
			return fmt.Errorf("expires %q at %s, before its expiry %s", e.HoldID, e.At, time.Unix(0, h.ExpiresAt).UTC())
		}
	}
	return nil
}

// HoldView is a hold as the API shows it, and as Redis keeps it in the
// wallet's holds hash: GET /wallet/{id}/holds/{hold_id}. A transfer's hold
// names its transfer and has no expiry (null).
type HoldView struct {
	HoldID     string     `json:"hold_id"`
	WalletID   string     `json:"wallet_id"`
	Amount     int64      `json:"amount"`
	Captured   int64      `json:"captured"`
	Status     HoldStatus `json:"status"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Version    int64      `json:"version"` // the wallet's version of the hold's newest event
	TransferID string     `json:"transfer_id,omitempty"`
}

// NewHoldView is the hold e made or ended on wallet id, at at; ok is false
// for an event that is not about a hold that exists.
func NewHoldView(id string, e Event, at time.Time) (HoldView, bool) {
	v := HoldView{HoldID: e.HoldID, WalletID: id, Amount: e.Amount, CreatedAt: e.HeldAt,
		UpdatedAt: at.UTC(), Version: e.Version, TransferID: e.TransferID}
	if !e.ExpiresAt.IsZero() {
		v.ExpiresAt = &e.ExpiresAt
	}
	if tid, ok := strings.CutPrefix(e.HoldID, transferHoldPrefix); ok {
		v.TransferID = tid
	}
	switch e.Type {
	case Held:
		v.Status, v.CreatedAt = StatusHeld, at.UTC()
	case HoldCaptured:
		v.Status, v.Captured = StatusCaptured, e.Captured
	case HoldVoided:
		v.Status = StatusVoided
	case HoldExpired:
		v.Status = StatusExpired
	case TransferredOut:
		v.Status, v.Captured, v.CreatedAt = StatusCaptured, e.Amount, e.HeldAt
	default:
		return HoldView{}, false
	}
	return v, true
}

// HoldResult is the answer to hold, capture and void: the hold, with the
// wallet's money after the command.
type HoldResult struct {
	HoldView
	Balance   int64 `json:"balance"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
}

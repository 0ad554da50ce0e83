package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
)

// SchemaVersion is the version of the event data layout that EncodeEvent
// writes. DecodeEvent reads every version it lists in decoders.
const SchemaVersion = 1

// ErrUnknownEvent is returned for an event type or schema version this build
// cannot read.
var ErrUnknownEvent = errors.New("unknown event type or schema")

// The stored layouts of schema version 1, by kind of event. Version and
// time travel in the envelope, not here, so the data of an event never
// repeats its position.
type (
	// moneyData: credited, debited, debit_rejected, credit_rejected.
	moneyData struct {
		Amount       int64  `json:"amount"`
		BalanceAfter int64  `json:"balance_after"`
		Reason       Reason `json:"reason,omitempty"`
	}
	// profileData: opened, updated; a field that is absent is unchanged.
	profileData struct {
		Owner          *string            `json:"owner,omitempty"`
		Metadata       *map[string]string `json:"metadata,omitempty"` // a pointer: an empty map is a change
		OverdraftLimit *int64             `json:"overdraft_limit,omitempty"`
	}
	// statusData: frozen, unfrozen, closed.
	statusData struct{}
	// rejectedData: command_rejected; a refused capture or void also
	// names its hold.
	rejectedData struct {
		Action Action `json:"action"`
		Reason Reason `json:"reason"`
		HoldID string `json:"hold_id,omitempty"`
	}
	// holdData: held, hold_captured, hold_voided, hold_expired and
	// hold_rejected. A hold's end repeats when it was made (held_at); a
	// capture says what it captured and the balance after it, a refusal
	// the balance it was refused at.
	holdData struct {
		HoldID       string     `json:"hold_id"`
		Amount       int64      `json:"amount"`
		ExpiresAt    *time.Time `json:"expires_at,omitempty"` // none: a transfer's, which never expires
		HeldAt       *time.Time `json:"held_at,omitempty"`
		Captured     int64      `json:"captured,omitempty"`
		BalanceAfter *int64     `json:"balance_after,omitempty"`
		Reason       Reason     `json:"reason,omitempty"`
	}
	// reversalData: reversal and reversal_rejected: what it takes back
	// (the transaction's event id, version and type) and the balance after
	// it, or the reason it was refused.
	reversalData struct {
		Amount          int64     `json:"amount"`
		BalanceAfter    int64     `json:"balance_after"`
		Reverses        string    `json:"reverses"`
		ReversedVersion int64     `json:"reversed_version"`
		ReversedType    EventType `json:"reversed_type"`
		Reason          Reason    `json:"reason,omitempty"`
	}
	// legData: transfer_in, transfer_out and transfer_in_rejected. The
	// capture of a transfer's hold repeats when it was made (held_at).
	legData struct {
		TransferID   string     `json:"transfer_id"`
		Counterpart  string     `json:"counterpart"`
		OrderID      string     `json:"order_id,omitempty"`
		Amount       int64      `json:"amount"`
		BalanceAfter int64      `json:"balance_after"`
		HeldAt       *time.Time `json:"held_at,omitempty"`
		Reason       Reason     `json:"reason,omitempty"`
	}
)

// appendJSON appends exactly what encoding/json makes of m (a test holds
// the two equal): the data of nearly every event, encoded on the
// committer's path.
func (m moneyData) appendJSON(b []byte) []byte {
	if !plainASCII(string(m.Reason)) {
		out, _ := json.Marshal(m)
		return append(b, out...)
	}
	b = append(b, `{"amount":`...)
	b = strconv.AppendInt(b, m.Amount, 10)
	b = append(b, `,"balance_after":`...)
	b = strconv.AppendInt(b, m.BalanceAfter, 10)
	if m.Reason != "" {
		b = append(b, `,"reason":"`...)
		b = append(b, m.Reason...)
		b = append(b, '"')
	}
	return append(b, '}')
}

type kind int

const (
	money kind = iota
	profile
	status
	rejected
	hold
	leg
	reversal
)

// decoders lists, per event type, its kind and the schema versions known.
// A new layout gets a new schema version and a new entry; old entries stay
// so the log can always be read back.
var decoders = map[EventType]struct {
	kind    kind
	schemas map[int]bool
}{
	Credited:        {money, map[int]bool{1: true}},
	Debited:         {money, map[int]bool{1: true}},
	DebitRejected:   {money, map[int]bool{1: true}},
	CreditRejected:  {money, map[int]bool{1: true}},
	Opened:          {profile, map[int]bool{1: true}},
	Updated:         {profile, map[int]bool{1: true}},
	Frozen:          {status, map[int]bool{1: true}},
	Unfrozen:        {status, map[int]bool{1: true}},
	Closed:          {status, map[int]bool{1: true}},
	CommandRejected: {rejected, map[int]bool{1: true}},
	Held:            {hold, map[int]bool{1: true}},
	HoldCaptured:    {hold, map[int]bool{1: true}},
	HoldVoided:      {hold, map[int]bool{1: true}},
	HoldExpired:     {hold, map[int]bool{1: true}},
	HoldRejected:    {hold, map[int]bool{1: true}},

	TransferredIn:      {leg, map[int]bool{1: true}},
	TransferredOut:     {leg, map[int]bool{1: true}},
	TransferInRejected: {leg, map[int]bool{1: true}},

	Reversal:         {reversal, map[int]bool{1: true}},
	ReversalRejected: {reversal, map[int]bool{1: true}},
}

// EncodeEvent returns the stored form of e's data at SchemaVersion.
func EncodeEvent(e Event) ([]byte, error) {
	d, ok := decoders[e.Type]
	if !ok {
		return nil, fmt.Errorf("encode %q: %w", e.Type, ErrUnknownEvent)
	}
	switch d.kind {
	case money:
		return moneyData{Amount: e.Amount, BalanceAfter: e.BalanceAfter, Reason: e.Reason}.appendJSON(make([]byte, 0, 64)), nil
	case profile:
		p := profileData{Owner: e.Owner, OverdraftLimit: e.OverdraftLimit}
		if e.Metadata != nil {
			p.Metadata = &e.Metadata
		}
		return json.Marshal(p)
	case rejected:
		return json.Marshal(rejectedData{Action: e.Action, Reason: e.Reason, HoldID: e.HoldID})
	case hold:
		h := holdData{HoldID: e.HoldID, Amount: e.Amount, Reason: e.Reason}
		if !e.ExpiresAt.IsZero() {
			at := e.ExpiresAt.UTC()
			h.ExpiresAt = &at
		}
		switch e.Type {
		case HoldRejected:
			h.BalanceAfter = &e.BalanceAfter
		case HoldCaptured:
			h.Captured, h.BalanceAfter = e.Captured, &e.BalanceAfter
			fallthrough
		case HoldVoided, HoldExpired:
			at := e.HeldAt.UTC()
			h.HeldAt = &at
		}
		return json.Marshal(h)
	case leg:
		l := legData{TransferID: e.TransferID, Counterpart: e.Counterpart, OrderID: e.OrderID, Amount: e.Amount, BalanceAfter: e.BalanceAfter, Reason: e.Reason}
		if e.Type == TransferredOut {
			at := e.HeldAt.UTC()
			l.HeldAt = &at
		}
		return json.Marshal(l)
	case reversal:
		return json.Marshal(reversalData{Amount: e.Amount, BalanceAfter: e.BalanceAfter, Reverses: e.Reverses,
			ReversedVersion: e.ReversedVersion, ReversedType: e.ReversedType, Reason: e.Reason})
	}
	return []byte(`{}`), nil
}

// DecodeEvent rebuilds an event from its type, schema version, wallet version
// and stored data (its time is the envelope's, set by the caller). It
// rejects data that could not have been written by EncodeEvent: unknown
// types, unknown fields, and amounts out of range.
func DecodeEvent(typ EventType, schema int, version int64, data []byte) (Event, error) {
	d, ok := decoders[typ]
	if !ok || !d.schemas[schema] {
		return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, ErrUnknownEvent)
	}
	if version <= 0 {
		return Event{}, fmt.Errorf("decode %q v%d: version %d: %w", typ, schema, version, ErrUnknownEvent)
	}
	e := Event{Type: typ, Version: version}
	switch d.kind {
	case money:
		var m moneyData
		if err := bus.DecodeStrict(data, &m); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		if m.Amount <= 0 || m.Amount > MaxAmount || m.BalanceAfter < -MaxAmount {
			return Event{}, fmt.Errorf("decode %q v%d: amount %d, balance %d, version %d: %w",
				typ, schema, m.Amount, m.BalanceAfter, version, ErrInvalidAmount)
		}
		if e.Rejection() != (m.Reason != "") || !knownReason(typ, m.Reason) {
			return Event{}, fmt.Errorf("decode %q v%d: reason %q: %w", typ, schema, m.Reason, ErrUnknownEvent)
		}
		e.Amount, e.BalanceAfter, e.Reason = m.Amount, m.BalanceAfter, m.Reason
	case profile:
		var p profileData
		if err := bus.DecodeStrict(data, &p); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		prof := Profile{Owner: p.Owner, OverdraftLimit: p.OverdraftLimit}
		if p.Metadata != nil {
			e.Metadata = *p.Metadata
			if e.Metadata == nil { // "metadata": null is not what EncodeEvent writes
				return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
			}
			prof.Metadata = make(map[string]*string, len(e.Metadata))
			for k, v := range e.Metadata {
				prof.Metadata[k] = &v
			}
		}
		if err := prof.check(false); err != nil || (typ == Updated && p.Owner == nil && p.Metadata == nil && p.OverdraftLimit == nil) {
			return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
		}
		e.Owner, e.OverdraftLimit = p.Owner, p.OverdraftLimit
	case status:
		if err := bus.DecodeStrict(data, &statusData{}); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
	case rejected:
		var r rejectedData
		if err := bus.DecodeStrict(data, &r); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		if _, err := ParseAction(string(r.Action)); err != nil || !knownReason(typ, r.Reason) ||
			(r.HoldID != "") != (r.Action == CaptureHold || r.Action == VoidHold || r.Action == TransferOut) || (r.HoldID != "" && CheckHoldID(r.HoldID) != nil) {
			return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
		}
		e.Action, e.Reason, e.HoldID = r.Action, r.Reason, r.HoldID
	case hold:
		var h holdData
		if err := bus.DecodeStrict(data, &h); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		ends := typ == HoldCaptured || typ == HoldVoided || typ == HoldExpired
		if CheckHoldID(h.HoldID) != nil || h.Amount <= 0 || h.Amount > MaxAmount || (h.ExpiresAt == nil) != IsTransferHold(h.HoldID) ||
			(h.HeldAt != nil) != ends || (typ == HoldCaptured || typ == HoldRejected) != (h.BalanceAfter != nil) ||
			(typ == HoldCaptured) != (h.Captured != 0) || h.Captured < 0 || h.Captured > h.Amount ||
			(h.BalanceAfter != nil && *h.BalanceAfter < -MaxAmount) || !knownReason(typ, h.Reason) || (typ == HoldRejected) != (h.Reason != "") {
			return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
		}
		e.HoldID, e.Amount, e.Captured, e.Reason = h.HoldID, h.Amount, h.Captured, h.Reason
		if h.ExpiresAt != nil {
			e.ExpiresAt = h.ExpiresAt.UTC()
		}
		if h.HeldAt != nil {
			e.HeldAt = h.HeldAt.UTC()
		}
		if h.BalanceAfter != nil {
			e.BalanceAfter = *h.BalanceAfter
		}
	case leg:
		var l legData
		if err := bus.DecodeStrict(data, &l); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		c := Command{Action: TransferIn, TransferID: l.TransferID, Counterpart: l.Counterpart, Amount: l.Amount, OrderID: l.OrderID}
		if c.checkLeg() != nil || l.BalanceAfter < -MaxAmount || (l.HeldAt != nil) != (typ == TransferredOut) ||
			!knownReason(typ, l.Reason) || (typ == TransferInRejected) != (l.Reason != "") {
			return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
		}
		e.TransferID, e.Counterpart, e.OrderID, e.Amount, e.BalanceAfter, e.Reason = l.TransferID, l.Counterpart, l.OrderID, l.Amount, l.BalanceAfter, l.Reason
		if l.HeldAt != nil {
			e.HoldID, e.HeldAt = TransferHoldID(l.TransferID), l.HeldAt.UTC()
		}
	case reversal:
		var r reversalData
		if err := bus.DecodeStrict(data, &r); err != nil {
			return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
		}
		if _, err := ksuid.Parse(r.Reverses); err != nil || r.Amount <= 0 || r.Amount > MaxAmount || r.BalanceAfter < -MaxAmount ||
			r.ReversedVersion < 1 || r.ReversedVersion >= version || (r.ReversedType != Credited && r.ReversedType != Debited) ||
			!knownReason(typ, r.Reason) || (typ == ReversalRejected) != (r.Reason != "") {
			return Event{}, fmt.Errorf("decode %q v%d: %s: %w", typ, schema, data, ErrUnknownEvent)
		}
		e.Amount, e.BalanceAfter, e.Reverses, e.ReversedVersion, e.ReversedType, e.Reason = r.Amount, r.BalanceAfter, r.Reverses, r.ReversedVersion, r.ReversedType, r.Reason
	}
	return e, nil
}

// knownReason reports whether an event of typ may give reason r.
func knownReason(typ EventType, r Reason) bool {
	switch typ {
	case DebitRejected:
		return r == ReasonInsufficientFunds || r == ReasonFrozen || r == ReasonClosed
	case CreditRejected:
		return r == ReasonClosed
	case CommandRejected:
		return r == ReasonClosed || r == ReasonFrozen || r == ReasonNotFrozen || r == ReasonBalanceNotZero ||
			r == ReasonHoldNotActive || r == ReasonHoldsActive
	case HoldRejected:
		return r == ReasonInsufficientFunds || r == ReasonFrozen || r == ReasonClosed
	case TransferInRejected:
		return r == ReasonClosed || r == ReasonBalanceOverflow
	case ReversalRejected:
		return r == ReasonInsufficientFunds || r == ReasonFrozen || r == ReasonClosed
	}
	return r == ""
}

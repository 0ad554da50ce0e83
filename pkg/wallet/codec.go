package wallet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// SchemaVersion is the version of the event data layout that EncodeEvent
// writes. DecodeEvent reads every version it lists in decoders.
const SchemaVersion = 1

// ErrUnknownEvent is returned for an event type or schema version this build
// cannot read.
var ErrUnknownEvent = errors.New("unknown event type or schema")

// eventData is the stored layout of schema version 1. Version travels in the
// envelope, not here, so the data of an event never repeats its position.
type eventData struct {
	Amount       int64  `json:"amount"`
	BalanceAfter int64  `json:"balance_after"`
	Reason       Reason `json:"reason,omitempty"`
}

// decoders lists, per event type and schema version, that the pair is known.
// A new layout gets a new schema version and a new entry; old entries stay so
// the log can always be read back.
var decoders = map[EventType]map[int]bool{
	Credited:      {1: true},
	Debited:       {1: true},
	DebitRejected: {1: true},
}

// EncodeEvent returns the stored form of e's data at SchemaVersion.
func EncodeEvent(e Event) ([]byte, error) {
	if _, ok := decoders[e.Type]; !ok {
		return nil, fmt.Errorf("encode %q: %w", e.Type, ErrUnknownEvent)
	}
	return json.Marshal(eventData{Amount: e.Amount, BalanceAfter: e.BalanceAfter, Reason: e.Reason})
}

// DecodeEvent rebuilds an event from its type, schema version, wallet version
// and stored data. It rejects data that could not have been written by
// EncodeEvent: unknown types, unknown fields, and amounts out of range.
func DecodeEvent(typ EventType, schema int, version int64, data []byte) (Event, error) {
	if !decoders[typ][schema] {
		return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, ErrUnknownEvent)
	}
	var d eventData
	if err := strictUnmarshal(data, &d); err != nil {
		return Event{}, fmt.Errorf("decode %q v%d: %w", typ, schema, err)
	}
	if d.Amount <= 0 || d.Amount > MaxAmount || d.BalanceAfter < 0 || version <= 0 {
		return Event{}, fmt.Errorf("decode %q v%d: amount %d, balance %d, version %d: %w",
			typ, schema, d.Amount, d.BalanceAfter, version, ErrInvalidAmount)
	}
	if (typ == DebitRejected) != (d.Reason != "") {
		return Event{}, fmt.Errorf("decode %q v%d: reason %q: %w", typ, schema, d.Reason, ErrUnknownEvent)
	}
	return Event{Type: typ, Version: version, Amount: d.Amount, BalanceAfter: d.BalanceAfter, Reason: d.Reason}, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after event")
	}
	return nil
}

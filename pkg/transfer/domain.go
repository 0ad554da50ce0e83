package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/engine"
)

// Domain is the transfer domain as the engine hosts it.
type Domain struct{}

var _ engine.Domain[State, Command, Event] = Domain{}

// Name is "transfer".
func (Domain) Name() string { return Name }

// Actions are request and record.
func (Domain) Actions() []string {
	out := make([]string, len(Actions))
	for i, a := range Actions {
		out[i] = string(a)
	}
	return out
}

// CheckID accepts a KSUID.
func (Domain) CheckID(id string) *bus.Error {
	if err := CheckID(id); err != nil {
		return &bus.Error{Code: bus.CodeInvalidTransferID, Detail: err.Error()}
	}
	return nil
}

// RequestData is the data of a request on the bus, and the body of
// POST /transfers.
// A reversal's request, which the process manager makes, names the
// transfer it reverses.
type RequestData struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Amount     int64  `json:"amount"`
	Reference  string `json:"reference,omitempty"`
	ReversalOf string `json:"reversal_of,omitempty"`
	// OrderID names the order a transfer pays for (package order
	// requests it).
	OrderID string `json:"order_id,omitempty"`
}

// RecordData is the data of a record on the bus: the step taken, a
// refusal's code, and the reversal whose end it records.
type RecordData struct {
	Step       Step   `json:"step"`
	Code       string `json:"code,omitempty"`
	ReversalID string `json:"reversal_id,omitempty"`
}

// ReverseData is the data of a reverse on the bus: the id its reversal
// will have.
type ReverseData struct {
	ReversalID string `json:"reversal_id"`
}

// DecodeCommand reads a RequestData for request and a RecordData for
// record, and validates them.
func (Domain) DecodeCommand(action string, data []byte) (Command, *bus.Error) {
	c := Command{Action: Action(action)}
	switch c.Action {
	case Request:
		var d RequestData
		if err := bus.DecodeStrict(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `request data must be {"from", "to", "amount", "reference"}: ` + err.Error()}
		}
		c.From, c.To, c.Amount, c.Reference, c.ReversalOf, c.OrderID = d.From, d.To, d.Amount, d.Reference, d.ReversalOf, d.OrderID
		if err := c.checkRequest(); err != nil {
			return Command{}, refusalOf(err)
		}
		if c.ReversalOf != "" && CheckID(c.ReversalOf) != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidTransferID, Detail: "reversal_of must be a transfer id"}
		}
	case Record:
		var d RecordData
		if err := bus.DecodeStrict(data, &d); err != nil || !slices.Contains(Steps, d.Step) || d.Step == Requested {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `record data must be {"step", "code"} with a step after requested`}
		}
		c.Step, c.Code, c.ReversalID = d.Step, d.Code, d.ReversalID
	case Reverse:
		var d ReverseData
		if err := bus.DecodeStrict(data, &d); err != nil || CheckID(d.ReversalID) != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `reverse data must be {"reversal_id"}, a KSUID`}
		}
		c.ReversalID = d.ReversalID
	default:
		return Command{}, &bus.Error{Code: bus.CodeNotFound, Detail: fmt.Sprintf("%q: %v", action, ErrUnknownAction)}
	}
	return c, nil
}

// Fingerprint is the action with its data.
func (Domain) Fingerprint(c Command) string {
	var b []byte
	switch c.Action {
	case Request:
		b, _ = json.Marshal(RequestData{From: c.From, To: c.To, Amount: c.Amount, Reference: c.Reference, ReversalOf: c.ReversalOf, OrderID: c.OrderID})
	case Reverse:
		b, _ = json.Marshal(ReverseData{ReversalID: c.ReversalID})
	default:
		b, _ = json.Marshal(RecordData{Step: c.Step, Code: c.Code, ReversalID: c.ReversalID})
	}
	return string(c.Action) + ":" + string(b)
}

// Decide is the package's Decide at the engine's time, its errors as the
// API's refusals.
func (Domain) Decide(s State, c Command, at time.Time) ([]Event, *bus.Error) {
	c.At = at
	e, err := Decide(s, c)
	if err != nil {
		return nil, refusalOf(err)
	}
	return []Event{e}, nil
}

// refusalOf is the API's refusal for an error of Decide.
func refusalOf(err error) *bus.Error {
	code := bus.CodeInvalidBody
	switch {
	case errors.Is(err, ErrInvalidWallet):
		code = bus.CodeInvalidWalletID
	case errors.Is(err, ErrSameWallet):
		code = bus.CodeSameWallet
	case errors.Is(err, ErrInvalidAmount):
		code = bus.CodeInvalidAmount
	case errors.Is(err, ErrInvalidReference):
		code = bus.CodeInvalidReference
	case errors.Is(err, ErrExists):
		code = bus.CodeTransferExists
	case errors.Is(err, ErrNotFound):
		code = bus.CodeTransferNotFound
	case errors.Is(err, ErrAlreadyReversed):
		code = bus.CodeAlreadyReversed
	case errors.Is(err, ErrNotCompleted):
		code = bus.CodeTransferNotCompleted
	}
	return &bus.Error{Code: code, Detail: err.Error()}
}

// Evolve is the package's Evolve.
func (Domain) Evolve(s State, e Event) State { return Evolve(s, e) }

// Version is s.Version.
func (Domain) Version(s State) int64 { return s.Version }

// SchemaVersion is the version of the event data layout EncodeEvent writes.
const SchemaVersion = 1

// ErrUnknownEvent is returned for an event this build cannot read.
var ErrUnknownEvent = errors.New("unknown event type or schema")

// eventData is the stored form of every event of schema 1: the type is the
// step; the version and the time are the envelope's.
type eventData struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Amount     int64  `json:"amount"`
	Reference  string `json:"reference,omitempty"`
	ReversalOf string `json:"reversal_of,omitempty"`
	OrderID    string `json:"order_id,omitempty"`
	Code       string `json:"code,omitempty"`
	ReversalID string `json:"reversal_id,omitempty"`
}

// EncodeEvent stores e at SchemaVersion, its step as its type.
func (Domain) EncodeEvent(e Event) (engine.Encoded, error) {
	if !slices.Contains(Steps, e.Step) {
		return engine.Encoded{}, fmt.Errorf("encode %q: %w", e.Step, ErrUnknownEvent)
	}
	data, err := json.Marshal(eventData{From: e.From, To: e.To, Amount: e.Amount, Reference: e.Reference, ReversalOf: e.ReversalOf,
		OrderID: e.OrderID, Code: e.Code, ReversalID: e.ReversalID})
	return engine.Encoded{Type: string(e.Step), Schema: SchemaVersion, Data: data}, err
}

// DecodeEvent reads a stored event, recorded at at; it refuses data
// EncodeEvent could not have written.
func (Domain) DecodeEvent(typ string, schema int, version int64, at time.Time, data []byte) (Event, error) {
	st := Step(typ)
	if !slices.Contains(Steps, st) || schema != SchemaVersion || version <= 0 {
		return Event{}, fmt.Errorf("decode %q v%d at version %d: %w", typ, schema, version, ErrUnknownEvent)
	}
	var d eventData
	if err := bus.DecodeStrict(data, &d); err != nil {
		return Event{}, fmt.Errorf("decode %q: %w", typ, err)
	}
	e := Event{Step: st, Version: version, At: at, From: d.From, To: d.To, Amount: d.Amount, Reference: d.Reference, ReversalOf: d.ReversalOf,
		OrderID: d.OrderID, Code: d.Code, ReversalID: d.ReversalID}
	bad := (Command{From: e.From, To: e.To, Amount: e.Amount, Reference: e.Reference, OrderID: e.OrderID}).checkRequest() != nil ||
		(st != Requested && e.Reference != "") || refused(st) != (e.Code != "") || (e.Code != "" && CheckCode(e.Code) != nil) ||
		aboutReversal(st) != (e.ReversalID != "") || (e.ReversalID != "" && CheckID(e.ReversalID) != nil) ||
		(e.ReversalOf != "" && CheckID(e.ReversalOf) != nil)
	if bad {
		return Event{}, fmt.Errorf("decode %q: %s: %w", typ, data, ErrUnknownEvent)
	}
	return e, nil
}

// stateData is the stored form of a State but its version.
type stateData struct {
	From       string     `json:"from"`
	To         string     `json:"to"`
	Amount     int64      `json:"amount"`
	Reference  string     `json:"reference,omitempty"`
	ReversalOf string     `json:"reversal_of,omitempty"`
	OrderID    string     `json:"order_id,omitempty"`
	Steps      []stepData `json:"steps"`
}

type stepData struct {
	Step       Step   `json:"step"`
	At         int64  `json:"at"`
	Code       string `json:"code,omitempty"`
	ReversalID string `json:"reversal_id,omitempty"`
}

// EncodeState stores s, but its version.
func (Domain) EncodeState(s State) []byte {
	d := stateData{From: s.From, To: s.To, Amount: s.Amount, Reference: s.Reference, ReversalOf: s.ReversalOf, OrderID: s.OrderID, Steps: make([]stepData, len(s.Steps))}
	for i, st := range s.Steps {
		d.Steps[i] = stepData(st)
	}
	b, _ := json.Marshal(d)
	return b
}

// ErrBadState is returned for a stored state that is not a transfer's.
var ErrBadState = errors.New("not a transfer state")

// DecodeState reads what EncodeState writes.
func (Domain) DecodeState(version int64, data []byte) (State, error) {
	var d stateData
	if err := bus.DecodeStrict(data, &d); err != nil || int64(len(d.Steps)) != version || version == 0 {
		return State{}, fmt.Errorf("%q at v%d: %w", data, version, ErrBadState)
	}
	s := State{Version: version, From: d.From, To: d.To, Amount: d.Amount, Reference: d.Reference, ReversalOf: d.ReversalOf, OrderID: d.OrderID, Steps: make([]StepAt, len(d.Steps))}
	var before State
	for i, st := range d.Steps {
		s.Steps[i] = StepAt(st)
		if !slices.Contains(next[before.Last().Step], st.Step) || refused(st.Step) != (st.Code != "") || aboutReversal(st.Step) != (st.ReversalID != "") {
			return State{}, fmt.Errorf("%q at v%d: step %d: %w", data, version, i+1, ErrBadState)
		}
		before.Steps = s.Steps[:i+1]
	}
	return s, nil
}

// View is a transfer as Redis keeps it at transfer.<id>, and as
// GET /transfers/{id} shows it: its status, why it failed, and each step
// with when it was taken.
type View struct {
	TransferID string        `json:"transfer_id"`
	From       string        `json:"from"`
	To         string        `json:"to"`
	Amount     int64         `json:"amount"`
	Reference  string        `json:"reference"`
	Status     Status        `json:"status"`
	Code       string        `json:"code,omitempty"`
	ReversalOf string        `json:"reversal_of,omitempty"`
	OrderID    string        `json:"order_id,omitempty"`
	Reversal   *ReversalView `json:"reversal,omitempty"`
	Steps      []StepView    `json:"steps"`
	Version    int64         `json:"version"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// ReversalView is the newest reversal of a completed transfer.
type ReversalView struct {
	TransferID string `json:"transfer_id"`
	Status     Status `json:"status"`
	Code       string `json:"code,omitempty"`
}

// StepView is one step of a transfer as the API shows it.
type StepView struct {
	Step       Step      `json:"step"`
	At         time.Time `json:"at"`
	Code       string    `json:"code,omitempty"`
	ReversalID string    `json:"reversal_id,omitempty"`
}

// NewView is the view of transfer id at s.
func NewView(id string, s State) View {
	v := View{TransferID: id, From: s.From, To: s.To, Amount: s.Amount, Reference: s.Reference, Status: s.Status(), Code: s.Code(),
		ReversalOf: s.ReversalOf, OrderID: s.OrderID, Steps: make([]StepView, len(s.Steps)), Version: s.Version}
	for i, st := range s.Steps {
		v.Steps[i] = StepView{Step: st.Step, At: time.Unix(0, st.At).UTC(), Code: st.Code, ReversalID: st.ReversalID}
	}
	if rid, st, code, ok := s.Reversal(); ok {
		v.Reversal = &ReversalView{TransferID: rid, Status: st, Code: code}
	}
	if len(v.Steps) > 0 {
		v.CreatedAt, v.UpdatedAt = v.Steps[0].At, v.Steps[len(v.Steps)-1].At
	}
	return v
}

// View is the transfer at transfer.<id>.
func (Domain) View(id string, s State, _ time.Time) []byte {
	b, _ := json.Marshal(NewView(id, s))
	return b
}

// Indexed: no index; a client knows its ids.
func (Domain) Indexed() bool { return false }

// Lists: a transfer keeps its steps in its state.
func (Domain) Lists() []string { return nil }

// ListEntry lists nothing.
func (Domain) ListEntry(string, Event, string, time.Time) (int, []byte, bool) { return 0, nil, false }

// Hashes: none.
func (Domain) Hashes() []string { return nil }

// HashFields sets none.
func (Domain) HashFields(string, Event, time.Time) []engine.HashField { return nil }

// Alarm: a transfer wants no command of its own; its process manager
// drives it.
func (Domain) Alarm(State) (time.Time, Command, bool) { return time.Time{}, Command{}, false }

// Refers: no transfer command needs an earlier event.
func (Domain) Refers(Command) string { return "" }

// Attach is never called (Refers names nothing).
func (Domain) Attach(c Command, _ Event, _ bool) Command { return c }

// Answer is the transfer after the command.
func (Domain) Answer(id string, _ Event, s State, _ string, _ time.Time) engine.Answer {
	b, _ := json.Marshal(NewView(id, s))
	return engine.Answer{Result: b}
}

// Check is the package's Check.
func (Domain) Check(before State, e Event, _ State) error { return Check(before, e) }

package order

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/engine"
)

// Domain is the order domain as the engine hosts it.
type Domain struct{}

var _ engine.Domain[State, Command, Event] = Domain{}

// Name is "order".
func (Domain) Name() string { return Name }

// Actions are place and record.
func (Domain) Actions() []string { return []string{string(Place), string(Record)} }

// CheckID accepts a KSUID.
func (Domain) CheckID(id string) *bus.Error {
	if err := CheckID(id); err != nil {
		return &bus.Error{Code: bus.CodeInvalidOrderID, Detail: err.Error()}
	}
	return nil
}

// LineData is a line on the bus and in the log: the price from reserved on.
type LineData struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
	Price    int64  `json:"price,omitempty"`
}

// PlaceData is the data of a place on the bus: the buyer's wallet, the
// shop's (wallet_server's SHOP_WALLET_ID) and the lines.
type PlaceData struct {
	WalletID     string     `json:"wallet_id"`
	ShopWalletID string     `json:"shop_wallet_id"`
	Lines        []LineData `json:"lines"`
}

// RecordData is the data of a record on the bus: the step taken, and what
// it needs of priced lines, code, item and payment.
type RecordData struct {
	Step       Step       `json:"step"`
	Lines      []LineData `json:"lines,omitempty"`
	Code       string     `json:"code,omitempty"`
	ItemID     string     `json:"item_id,omitempty"`
	TransferID string     `json:"transfer_id,omitempty"`
}

func linesOf(d []LineData) []Line {
	out := make([]Line, len(d))
	for i, l := range d {
		out[i] = Line(l)
	}
	return out
}

func dataOf(lines []Line) []LineData {
	out := make([]LineData, len(lines))
	for i, l := range lines {
		out[i] = LineData(l)
	}
	return out
}

// DecodeCommand reads a PlaceData for place and a RecordData for record.
func (Domain) DecodeCommand(action string, data []byte) (Command, *bus.Error) {
	c := Command{Action: Action(action)}
	switch c.Action {
	case Place:
		var d PlaceData
		if err := bus.DecodeStrict(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `place data must be {"wallet_id", "shop_wallet_id", "lines"}: ` + err.Error()}
		}
		c.Wallet, c.Shop, c.Lines = d.WalletID, d.ShopWalletID, linesOf(d.Lines)
		if err := c.checkPlace(); err != nil {
			return Command{}, RefusalOf(err)
		}
	case Record:
		var d RecordData
		if err := bus.DecodeStrict(data, &d); err != nil || !slices.Contains(Steps, d.Step) || d.Step == Placed {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `record data must be {"step", ...} with a step after placed`}
		}
		c.Step, c.Lines, c.Code, c.ItemID, c.TransferID = d.Step, linesOf(d.Lines), d.Code, d.ItemID, d.TransferID
	default:
		return Command{}, &bus.Error{Code: bus.CodeNotFound, Detail: fmt.Sprintf("%q: %v", action, ErrUnknownAction)}
	}
	return c, nil
}

// Fingerprint is the action with its data.
func (Domain) Fingerprint(c Command) string {
	var b []byte
	if c.Action == Place {
		b, _ = json.Marshal(PlaceData{WalletID: c.Wallet, ShopWalletID: c.Shop, Lines: dataOf(c.Lines)})
	} else {
		d := RecordData{Step: c.Step, Code: c.Code, ItemID: c.ItemID, TransferID: c.TransferID}
		if len(c.Lines) > 0 {
			d.Lines = dataOf(c.Lines)
		}
		b, _ = json.Marshal(d)
	}
	return string(c.Action) + ":" + string(b)
}

// Decide is the package's Decide at the engine's time, its errors as the
// API's refusals.
func (Domain) Decide(s State, c Command, at time.Time) ([]Event, *bus.Error) {
	c.At = at
	e, err := Decide(s, c)
	if err != nil {
		return nil, RefusalOf(err)
	}
	return []Event{e}, nil
}

// RefusalOf is the API's refusal for an error of Decide.
func RefusalOf(err error) *bus.Error {
	code := bus.CodeInvalidBody
	switch {
	case errors.Is(err, ErrInvalidID):
		code = bus.CodeInvalidOrderID
	case errors.Is(err, ErrInvalidWallet):
		code = bus.CodeInvalidWalletID
	case errors.Is(err, ErrSameWallet):
		code = bus.CodeSameWallet
	case errors.Is(err, ErrInvalidLines):
		code = bus.CodeInvalidLines
	case errors.Is(err, ErrExists):
		code = bus.CodeOrderExists
	case errors.Is(err, ErrNotFound):
		code = bus.CodeOrderNotFound
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
	WalletID     string     `json:"wallet_id"`
	ShopWalletID string     `json:"shop_wallet_id"`
	Lines        []LineData `json:"lines"`
	Total        int64      `json:"total,omitempty"`
	Code         string     `json:"code,omitempty"`
	ItemID       string     `json:"item_id,omitempty"`
	TransferID   string     `json:"transfer_id,omitempty"`
}

// EncodeEvent stores e at SchemaVersion, its step as its type.
func (Domain) EncodeEvent(e Event) (engine.Encoded, error) {
	if !slices.Contains(Steps, e.Step) {
		return engine.Encoded{}, fmt.Errorf("encode %q: %w", e.Step, ErrUnknownEvent)
	}
	data, err := json.Marshal(eventData{WalletID: e.Wallet, ShopWalletID: e.Shop, Lines: dataOf(e.Lines), Total: e.Total,
		Code: e.Code, ItemID: e.ItemID, TransferID: e.TransferID})
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
	e := Event{Step: st, Version: version, At: at, Wallet: d.WalletID, Shop: d.ShopWalletID, Lines: linesOf(d.Lines), Total: d.Total,
		Code: d.Code, ItemID: d.ItemID, TransferID: d.TransferID}
	failure := st == PaymentFailed || st == Failed
	bad := checkWallets(e.Wallet, e.Shop) != nil ||
		failure != (e.Code != "") || (!failure && e.ItemID != "")
	if bad {
		return Event{}, fmt.Errorf("decode %q: %s: %w", typ, data, ErrUnknownEvent)
	}
	return e, nil
}

// stateData is the stored form of a State but its version.
type stateData struct {
	WalletID     string     `json:"wallet_id"`
	ShopWalletID string     `json:"shop_wallet_id"`
	Lines        []LineData `json:"lines"`
	Total        int64      `json:"total,omitempty"`
	TransferID   string     `json:"transfer_id,omitempty"`
	Steps        []stepData `json:"steps"`
}

type stepData struct {
	Step   Step   `json:"step"`
	At     int64  `json:"at"`
	Code   string `json:"code,omitempty"`
	ItemID string `json:"item_id,omitempty"`
}

// EncodeState stores s, but its version.
func (Domain) EncodeState(s State) []byte {
	d := stateData{WalletID: s.Wallet, ShopWalletID: s.Shop, Lines: dataOf(s.Lines), Total: s.Total, TransferID: s.TransferID,
		Steps: make([]stepData, len(s.Steps))}
	for i, st := range s.Steps {
		d.Steps[i] = stepData(st)
	}
	b, _ := json.Marshal(d)
	return b
}

// ErrBadState is returned for a stored state that is not an order's.
var ErrBadState = errors.New("not an order state")

// DecodeState reads what EncodeState writes.
func (Domain) DecodeState(version int64, data []byte) (State, error) {
	var d stateData
	if err := bus.DecodeStrict(data, &d); err != nil || int64(len(d.Steps)) != version || version == 0 {
		return State{}, fmt.Errorf("%q at v%d: %w", data, version, ErrBadState)
	}
	s := State{Version: version, Wallet: d.WalletID, Shop: d.ShopWalletID, Lines: linesOf(d.Lines), Total: d.Total, TransferID: d.TransferID,
		Steps: make([]StepAt, len(d.Steps))}
	var before StepAt
	for i, st := range d.Steps {
		s.Steps[i] = StepAt(st)
		if !slices.Contains(next[before.Step], st.Step) {
			return State{}, fmt.Errorf("%q at v%d: step %d: %w", data, version, i+1, ErrBadState)
		}
		before = s.Steps[i]
	}
	return s, nil
}

// View is an order as Redis keeps it at order.<id>, and as GET /orders/{id}
// shows it: its status, why it failed (code, and item_id when an item
// refused), its lines at the prices reserved, the total and the transfer
// that paid it, and each step with when it was taken.
type View struct {
	OrderID      string     `json:"order_id"`
	WalletID     string     `json:"wallet_id"`
	ShopWalletID string     `json:"shop_wallet_id"`
	Status       Status     `json:"status"`
	Code         string     `json:"code,omitempty"`
	ItemID       string     `json:"item_id,omitempty"`
	Lines        []LineView `json:"lines"`
	Total        int64      `json:"total"`
	TransferID   string     `json:"transfer_id,omitempty"`
	Steps        []StepView `json:"steps"`
	Version      int64      `json:"version"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// LineView is a line as the API shows it: the price and the amount (price
// × quantity) once reserved, 0 before.
type LineView struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
	Price    int64  `json:"price"`
	Amount   int64  `json:"amount"`
}

// StepView is one step of an order as the API shows it.
type StepView struct {
	Step   Step      `json:"step"`
	At     time.Time `json:"at"`
	Code   string    `json:"code,omitempty"`
	ItemID string    `json:"item_id,omitempty"`
}

// NewView is the view of order id at s.
func NewView(id string, s State) View {
	code, itemID := s.Failure()
	v := View{OrderID: id, WalletID: s.Wallet, ShopWalletID: s.Shop, Status: s.Status(), Code: code, ItemID: itemID,
		Lines: make([]LineView, len(s.Lines)), Total: s.Total, TransferID: s.TransferID, Steps: make([]StepView, len(s.Steps)), Version: s.Version}
	for i, l := range s.Lines {
		v.Lines[i] = LineView{ItemID: l.ItemID, Quantity: l.Quantity, Price: l.Price, Amount: l.Price * l.Quantity}
	}
	for i, st := range s.Steps {
		v.Steps[i] = StepView{Step: st.Step, At: time.Unix(0, st.At).UTC(), Code: st.Code, ItemID: st.ItemID}
	}
	if len(v.Steps) > 0 {
		v.CreatedAt, v.UpdatedAt = v.Steps[0].At, v.Steps[len(v.Steps)-1].At
	}
	return v
}

// View is the order at order.<id>.
func (Domain) View(id string, s State, _ time.Time) []byte {
	b, _ := json.Marshal(NewView(id, s))
	return b
}

// Indexed: no index; a client knows its orders' ids.
func (Domain) Indexed() bool { return false }

// Lists: an order keeps its steps in its state.
func (Domain) Lists() []string { return nil }

// ListEntry lists nothing.
func (Domain) ListEntry(string, Event, string, time.Time) (int, []byte, bool) { return 0, nil, false }

// Hashes: none.
func (Domain) Hashes() []string { return nil }

// HashFields sets none.
func (Domain) HashFields(string, Event, time.Time) []engine.HashField { return nil }

// Alarm: an order wants no command of its own; its process manager drives
// it.
func (Domain) Alarm(State) (time.Time, Command, bool) { return time.Time{}, Command{}, false }

// Refers: no order command needs an earlier event.
func (Domain) Refers(Command) string { return "" }

// Attach is never called (Refers names nothing).
func (Domain) Attach(c Command, _ Event, _ bool) Command { return c }

// Answer is the order after the command.
func (Domain) Answer(id string, _ Event, s State, _ string, _ time.Time) engine.Answer {
	b, _ := json.Marshal(NewView(id, s))
	return engine.Answer{Result: b}
}

// Check is the package's Check.
func (Domain) Check(before State, e Event, _ State) error { return Check(before, e) }

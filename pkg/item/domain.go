package item

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/engine"
)

// Domain is the item domain as the engine hosts it.
type Domain struct{}

var _ engine.Domain[State, Command, Event] = Domain{}

// Name is "item".
func (Domain) Name() string { return Name }

// Actions are add, update, restock, reserve, release and sell.
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
		return &bus.Error{Code: bus.CodeInvalidItemID, Detail: err.Error()}
	}
	return nil
}

// AddData is the data of an add on the bus, and the body of POST /items.
type AddData struct {
	Name  string `json:"name"`
	Price int64  `json:"price"`
	Stock int64  `json:"stock"`
}

// UpdateData is the data of an update, and the body of PATCH /items/{id}:
// a member left out keeps its value.
type UpdateData struct {
	Name  string `json:"name,omitempty"`
	Price int64  `json:"price,omitempty"`
}

// RestockData is the data of a restock, and the body of
// POST /items/{id}/restock.
type RestockData struct {
	Quantity int64 `json:"quantity"`
}

// ReservationData is the data of an order's reserve (with its quantity),
// release and sell.
type ReservationData struct {
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity,omitempty"`
}

// DecodeCommand reads and validates the data of a command for action.
func (Domain) DecodeCommand(action string, data []byte) (Command, *bus.Error) {
	c := Command{Action: Action(action)}
	var err error
	switch c.Action {
	case Add:
		var d AddData
		err = bus.DecodeStrict(data, &d)
		c.Name, c.Price, c.Stock = d.Name, d.Price, d.Stock
	case Update:
		var d UpdateData
		err = bus.DecodeStrict(data, &d)
		c.Name, c.Price = d.Name, d.Price
	case Restock:
		var d RestockData
		err = bus.DecodeStrict(data, &d)
		c.Quantity = d.Quantity
	case Reserve, Release, Sell:
		var d ReservationData
		err = bus.DecodeStrict(data, &d)
		c.OrderID, c.Quantity = d.OrderID, d.Quantity
		if c.Action != Reserve && c.Quantity != 0 {
			err = fmt.Errorf("%s takes no quantity: the reservation says it", action)
		}
	default:
		return Command{}, &bus.Error{Code: bus.CodeNotFound, Detail: fmt.Sprintf("%q: %v", action, ErrUnknownAction)}
	}
	if err != nil {
		return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: fmt.Sprintf("%s data: %v", action, err)}
	}
	if err := c.Check(); err != nil {
		return Command{}, RefusalOf(err)
	}
	return c, nil
}

// Fingerprint is the action with its data.
func (Domain) Fingerprint(c Command) string {
	var b []byte
	switch c.Action {
	case Add:
		b, _ = json.Marshal(AddData{Name: c.Name, Price: c.Price, Stock: c.Stock})
	case Update:
		b, _ = json.Marshal(UpdateData{Name: c.Name, Price: c.Price})
	case Restock:
		b, _ = json.Marshal(RestockData{Quantity: c.Quantity})
	default:
		b, _ = json.Marshal(ReservationData{OrderID: c.OrderID, Quantity: c.Quantity})
	}
	return string(c.Action) + ":" + string(b)
}

// Decide is the package's Decide, its errors as the API's refusals.
func (Domain) Decide(s State, c Command, at time.Time) ([]Event, *bus.Error) {
	e, err := Decide(s, c, at)
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
		code = bus.CodeInvalidItemID
	case errors.Is(err, ErrInvalidName):
		code = bus.CodeInvalidName
	case errors.Is(err, ErrInvalidPrice):
		code = bus.CodeInvalidPrice
	case errors.Is(err, ErrInvalidQuantity), errors.Is(err, ErrInvalidStock), errors.Is(err, ErrStockOverflow):
		code = bus.CodeInvalidQuantity
	case errors.Is(err, ErrNotFound):
		code = bus.CodeItemNotFound
	case errors.Is(err, ErrExists):
		code = bus.CodeItemExists
	case errors.Is(err, ErrInvalidOrder):
		code = bus.CodeInvalidOrderID
	case errors.Is(err, ErrReservationExists):
		code = bus.CodeReservationExists
	case errors.Is(err, ErrReservationMissing):
		code = bus.CodeReservationNotFound
	case errors.Is(err, ErrTooManyReserved):
		code = bus.CodeOverloaded
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

// eventData is the stored form of every event of schema 1; the type, the
// version and the time are the envelope's.
type eventData struct {
	Name       string `json:"name,omitempty"`
	Price      int64  `json:"price,omitempty"`
	Quantity   int64  `json:"quantity"`
	StockAfter int64  `json:"stock_after"`
	OrderID    string `json:"order_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// EncodeEvent stores e at SchemaVersion.
func (Domain) EncodeEvent(e Event) (engine.Encoded, error) {
	if !slices.Contains(Types, e.Type) {
		return engine.Encoded{}, fmt.Errorf("encode %q: %w", e.Type, ErrUnknownEvent)
	}
	data, err := json.Marshal(eventData{Name: e.Name, Price: e.Price, Quantity: e.Quantity, StockAfter: e.StockAfter, OrderID: e.OrderID, Reason: e.Reason})
	return engine.Encoded{Type: string(e.Type), Schema: SchemaVersion, Data: data}, err
}

// DecodeEvent reads a stored event, recorded at at; it refuses data
// EncodeEvent could not have written.
func (Domain) DecodeEvent(typ string, schema int, version int64, at time.Time, data []byte) (Event, error) {
	t := Type(typ)
	if !slices.Contains(Types, t) || schema != SchemaVersion || version <= 0 {
		return Event{}, fmt.Errorf("decode %q v%d at version %d: %w", typ, schema, version, ErrUnknownEvent)
	}
	var d eventData
	if err := bus.DecodeStrict(data, &d); err != nil {
		return Event{}, fmt.Errorf("decode %q: %w", typ, err)
	}
	e := Event{Type: t, Version: version, At: at, Name: d.Name, Price: d.Price, Quantity: d.Quantity, StockAfter: d.StockAfter, OrderID: d.OrderID, Reason: d.Reason}
	byOrder := t == Reserved || t == ReservationRejected || t == Released || t == Sold
	named := t == Added || t == Updated
	bad := (named && (CheckName(e.Name) != nil || CheckPrice(e.Price) != nil)) || (!named && e.Name != "") ||
		(byOrder != (e.OrderID != "")) || (byOrder && checkOrder(e.OrderID) != nil) ||
		((t == ReservationRejected) != (e.Reason != "")) || e.Quantity < 0 || e.StockAfter < 0
	if bad {
		return Event{}, fmt.Errorf("decode %q: %s: %w", typ, data, ErrUnknownEvent)
	}
	return e, nil
}

// stateData is the stored form of a State but its version.
type stateData struct {
	Name         string           `json:"name"`
	Price        int64            `json:"price"`
	Initial      int64            `json:"initial"`
	Restocked    int64            `json:"restocked"`
	Stock        int64            `json:"stock"`
	Reserved     int64            `json:"reserved"`
	Sold         int64            `json:"sold"`
	Created      int64            `json:"created"`
	Reservations map[string]int64 `json:"reservations,omitempty"`
}

// EncodeState stores s, but its version.
func (Domain) EncodeState(s State) []byte {
	b, _ := json.Marshal(stateData{Name: s.Name, Price: s.Price, Initial: s.Initial, Restocked: s.Restocked, Stock: s.Stock,
		Reserved: s.Reserved, Sold: s.Sold, Created: s.Created, Reservations: s.reservations})
	return b
}

// ErrBadState is returned for a stored state that is not an item's.
var ErrBadState = errors.New("not an item state")

// DecodeState reads what EncodeState writes.
func (Domain) DecodeState(version int64, data []byte) (State, error) {
	var d stateData
	if err := bus.DecodeStrict(data, &d); err != nil || version < 1 {
		return State{}, fmt.Errorf("%q at v%d: %w", data, version, ErrBadState)
	}
	s := State{Version: version, Name: d.Name, Price: d.Price, Initial: d.Initial, Restocked: d.Restocked, Stock: d.Stock,
		Reserved: d.Reserved, Sold: d.Sold, Created: d.Created, reservations: d.Reservations}
	var sum int64
	for _, n := range s.reservations {
		sum += n
	}
	if s.Initial+s.Restocked != s.Stock+s.Reserved+s.Sold || sum != s.Reserved || s.Stock < 0 || CheckName(s.Name) != nil {
		return State{}, fmt.Errorf("%q at v%d: units do not add up: %w", data, version, ErrBadState)
	}
	return s, nil
}

// View is an item as Redis keeps it at item.<id>, and as GET /items/{id}
// shows it: stock is what may still be ordered, reserved what orders in
// progress hold, sold what they took; initial_stock + restocked = stock +
// reserved + sold.
type View struct {
	ItemID       string    `json:"item_id"`
	Name         string    `json:"name"`
	Price        int64     `json:"price"`
	Stock        int64     `json:"stock"`
	Reserved     int64     `json:"reserved"`
	Sold         int64     `json:"sold"`
	InitialStock int64     `json:"initial_stock"`
	Restocked    int64     `json:"restocked"`
	Version      int64     `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// NewView is the view of item id at s, whose newest event happened at at.
func NewView(id string, s State, at time.Time) View {
	return View{ItemID: id, Name: s.Name, Price: s.Price, Stock: s.Stock, Reserved: s.Reserved, Sold: s.Sold,
		InitialStock: s.Initial, Restocked: s.Restocked, Version: s.Version, CreatedAt: time.Unix(0, s.Created).UTC(), UpdatedAt: at.UTC()}
}

// View is the item at item.<id>.
func (Domain) View(id string, s State, at time.Time) []byte {
	b, _ := json.Marshal(NewView(id, s, at))
	return b
}

// Indexed: GET /items lists every item.
func (Domain) Indexed() bool { return true }

// Lists: an item's events are in the log and the history; the read model
// keeps its state alone.
func (Domain) Lists() []string { return nil }

// ListEntry lists nothing.
func (Domain) ListEntry(string, Event, string, time.Time) (int, []byte, bool) { return 0, nil, false }

// Hashes: none.
func (Domain) Hashes() []string { return nil }

// HashFields sets none.
func (Domain) HashFields(string, Event, time.Time) []engine.HashField { return nil }

// Alarm: an item wants no command of its own.
func (Domain) Alarm(State) (time.Time, Command, bool) { return time.Time{}, Command{}, false }

// Refers: no item command needs an earlier event.
func (Domain) Refers(Command) string { return "" }

// Attach is never called (Refers names nothing).
func (Domain) Attach(c Command, _ Event, _ bool) Command { return c }

// ReservationResult is what a reservation, a release or a sale answers:
// the units and the price they moved at, and the item after.
type ReservationResult struct {
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity"`
	Price    int64  `json:"price,omitempty"`
	Item     View   `json:"item"`
}

// Answer is the item after the command; for an order's step, the units
// and the price with it; for a reservation refused for want of stock, the
// refusal naming the item and what it has.
func (Domain) Answer(id string, e Event, s State, _ string, at time.Time) engine.Answer {
	switch e.Type {
	case ReservationRejected:
		fields, _ := json.Marshal(struct {
			ItemID    string `json:"item_id"`
			Requested int64  `json:"requested"`
			InStock   int64  `json:"in_stock"`
		}{id, e.Quantity, s.Stock})
		return engine.Answer{Refusal: &bus.Error{Code: bus.CodeOutOfStock, Fields: fields,
			Detail: fmt.Sprintf("item %s has %d in stock; %d were asked for", id, s.Stock, e.Quantity)}}
	case Reserved, Released, Sold:
		b, _ := json.Marshal(ReservationResult{OrderID: e.OrderID, Quantity: e.Quantity, Price: e.Price, Item: NewView(id, s, at)})
		return engine.Answer{Result: b}
	}
	b, _ := json.Marshal(NewView(id, s, at))
	return engine.Answer{Result: b}
}

// Check is the package's Check.
func (Domain) Check(before State, e Event, _ State) error { return Check(before, e) }

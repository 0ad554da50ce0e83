// Package item is Coffer's warehouse domain: items with a name, a price and
// a number in stock, each a stream of its own, item.<id>. Stock moves only
// by events, and every unit is always in exactly one place:
//
//	initial stock + restocked = stock + reserved + sold
//
// An order (package order) reserves units for itself (reserved: stock →
// reserved), then either sells them once it is paid (sold: reserved → sold)
// or releases them (released: reserved → stock). A reservation is keyed by
// its order, so each order holds at most one on an item, and each of its
// steps applies once whoever repeats it. A reservation refused for want of
// stock is a business outcome and is recorded (reservation_rejected), like a
// debit refused for funds.
//
// Like package wallet, Decide and Evolve do no I/O and read no clock: the
// engine gives Decide the time.
package item

import (
	"errors"
	"fmt"
	"maps"
	"time"
	"unicode/utf8"

	"github.com/segmentio/ksuid"
)

// Name is the item domain's name: item.<id> in Redis, cmd.item.<id>.<action>
// and evt.item.<id>.<type> on NATS.
const Name = "item"

// Bounds: a price in minor units (like amounts), a quantity in one command,
// the stock of one item, a name in bytes of UTF-8, and the orders holding
// reservations on one item at once.
const (
	MaxPrice        int64 = 1_000_000_000_000
	MaxQuantity     int64 = 1_000_000_000
	MaxStock        int64 = 1_000_000_000_000
	MaxNameLen            = 255
	MaxReservations       = 10_000
)

// Errors of commands that record nothing.
var (
	ErrInvalidID          = errors.New("invalid item id")
	ErrInvalidName        = errors.New("name must be 1 to 255 bytes of UTF-8")
	ErrInvalidPrice       = errors.New("price must be a whole number of minor units from 1 to 10^12")
	ErrInvalidQuantity    = errors.New("quantity must be a whole number from 1 to 10^9")
	ErrInvalidStock       = errors.New("stock must be a whole number from 0 to 10^12")
	ErrNotFound           = errors.New("no such item")
	ErrExists             = errors.New("the item exists already")
	ErrNothingToUpdate    = errors.New("an update changes the name, the price or both")
	ErrStockOverflow      = errors.New("the units in stock and reserved would pass 10^12")
	ErrInvalidOrder       = errors.New("invalid order id")
	ErrReservationExists  = errors.New("the order holds a reservation on this item already")
	ErrReservationMissing = errors.New("the order holds no reservation on this item")
	ErrTooManyReserved    = errors.New("too many orders hold reservations on this item")
	ErrUnknownAction      = errors.New("unknown action")
)

// Action names what a command asks for.
type Action string

// The actions: a client's (add, update, restock) and an order's process
// manager's (reserve, release, sell).
const (
	Add     Action = "add"
	Update  Action = "update"
	Restock Action = "restock"
	Reserve Action = "reserve"
	Release Action = "release"
	Sell    Action = "sell"
)

// Actions lists every action.
var Actions = []Action{Add, Update, Restock, Reserve, Release, Sell}

// Type names an event.
type Type string

// The events.
const (
	Added               Type = "added"
	Updated             Type = "updated"
	Restocked           Type = "restocked"
	Reserved            Type = "reserved"
	ReservationRejected Type = "reservation_rejected"
	Released            Type = "released"
	Sold                Type = "sold"
)

// Types lists every event type.
var Types = []Type{Added, Updated, Restocked, Reserved, ReservationRejected, Released, Sold}

// ReasonOutOfStock is why a reservation is refused: fewer units in stock
// than it asks for.
const ReasonOutOfStock = "out_of_stock"

// Command asks for Action on an item. Name and Price are an add's and an
// update's (an update's empty Name or zero Price leaves it as it is);
// Stock is an add's; Quantity a restock's and a reservation's; OrderID names
// the order of a reserve, release or sell.
type Command struct {
	Action   Action
	Name     string
	Price    int64
	Stock    int64
	Quantity int64
	OrderID  string
}

// Event is what happened to an item at Version, at At. Name and Price are
// the item's after an added or updated, and the price a reservation or a
// sale was made at; Quantity is how many units moved (for an added, the
// initial stock); StockAfter the units in stock after it.
type Event struct {
	Type       Type
	Version    int64
	At         time.Time
	Name       string
	Price      int64
	Quantity   int64
	StockAfter int64
	OrderID    string
	Reason     string
}

// State is an item after Version events; the zero State is an item nobody
// has added.
type State struct {
	Version int64
	Name    string
	Price   int64
	// Units: Initial + Restocked = Stock + Reserved + Sold.
	Initial, Restocked, Stock, Reserved, Sold int64
	Created                                   int64 // Unix nanoseconds of the added event
	// reservations holds each order's reserved units; copied on change,
	// so a State may be kept while another is derived from it.
	reservations map[string]int64
}

// Exists reports whether the item was added.
func (s State) Exists() bool { return s.Version > 0 }

// Reservation is how many units order holds reserved.
func (s State) Reservation(order string) (int64, bool) {
	n, ok := s.reservations[order]
	return n, ok
}

// Reservations returns the reservations by order (a copy).
func (s State) Reservations() map[string]int64 { return maps.Clone(s.reservations) }

// CheckID accepts a KSUID.
func CheckID(id string) error {
	if _, err := ksuid.Parse(id); err != nil {
		return fmt.Errorf("%q is not a KSUID: %w", id, ErrInvalidID)
	}
	return nil
}

// CheckName accepts 1 to MaxNameLen bytes of UTF-8.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) {
		return ErrInvalidName
	}
	return nil
}

// CheckPrice accepts 1 to MaxPrice.
func CheckPrice(p int64) error {
	if p < 1 || p > MaxPrice {
		return ErrInvalidPrice
	}
	return nil
}

// CheckQuantity accepts 1 to MaxQuantity.
func CheckQuantity(q int64) error {
	if q < 1 || q > MaxQuantity {
		return ErrInvalidQuantity
	}
	return nil
}

// Check validates a command's own fields, whatever the item's state.
func (c Command) Check() error {
	switch c.Action {
	case Add:
		if err := CheckName(c.Name); err != nil {
			return err
		}
		if err := CheckPrice(c.Price); err != nil {
			return err
		}
		if c.Stock < 0 || c.Stock > MaxStock {
			return ErrInvalidStock
		}
	case Update:
		if c.Name == "" && c.Price == 0 {
			return ErrNothingToUpdate
		}
		if c.Name != "" {
			if err := CheckName(c.Name); err != nil {
				return err
			}
		}
		if c.Price != 0 {
			if err := CheckPrice(c.Price); err != nil {
				return err
			}
		}
	case Restock:
		return CheckQuantity(c.Quantity)
	case Reserve:
		if err := CheckQuantity(c.Quantity); err != nil {
			return err
		}
		return checkOrder(c.OrderID)
	case Release, Sell:
		return checkOrder(c.OrderID)
	default:
		return fmt.Errorf("%q: %w", c.Action, ErrUnknownAction)
	}
	return nil
}

func checkOrder(id string) error {
	if _, err := ksuid.Parse(id); err != nil {
		return fmt.Errorf("order %q is not a KSUID: %w", id, ErrInvalidOrder)
	}
	return nil
}

// Decide returns the event that records c against s, decided at at, or
// the error of a command that records nothing.
func Decide(s State, c Command, at time.Time) (Event, error) {
	if err := c.Check(); err != nil {
		return Event{}, err
	}
	e := Event{Version: s.Version + 1, At: at, OrderID: c.OrderID}
	if c.Action == Add {
		if s.Exists() {
			return Event{}, ErrExists
		}
		e.Type, e.Name, e.Price, e.Quantity, e.StockAfter = Added, c.Name, c.Price, c.Stock, c.Stock
		return e, nil
	}
	if !s.Exists() {
		return Event{}, ErrNotFound
	}
	e.StockAfter = s.Stock
	switch c.Action {
	case Update:
		e.Type, e.Name, e.Price = Updated, s.Name, s.Price
		if c.Name != "" {
			e.Name = c.Name
		}
		if c.Price != 0 {
			e.Price = c.Price
		}
	case Restock:
		if s.Stock+s.Reserved+c.Quantity > MaxStock {
			return Event{}, ErrStockOverflow
		}
		e.Type, e.Quantity, e.StockAfter = Restocked, c.Quantity, s.Stock+c.Quantity
	case Reserve:
		if _, ok := s.reservations[c.OrderID]; ok {
			return Event{}, ErrReservationExists
		}
		e.Quantity, e.Price = c.Quantity, s.Price
		if c.Quantity > s.Stock {
			e.Type, e.Reason = ReservationRejected, ReasonOutOfStock
			return e, nil
		}
		if len(s.reservations) >= MaxReservations {
			return Event{}, ErrTooManyReserved
		}
		e.Type, e.StockAfter = Reserved, s.Stock-c.Quantity
	case Release, Sell:
		n, ok := s.reservations[c.OrderID]
		if !ok {
			return Event{}, ErrReservationMissing
		}
		e.Quantity = n
		if c.Action == Sell {
			e.Type, e.Price = Sold, s.Price
		} else {
			e.Type, e.StockAfter = Released, s.Stock+n
		}
	}
	return e, nil
}

// Evolve returns s with e applied.
func Evolve(s State, e Event) State {
	s.Version = e.Version
	switch e.Type {
	case Added:
		s.Name, s.Price, s.Initial, s.Stock, s.Created = e.Name, e.Price, e.Quantity, e.Quantity, e.At.UnixNano()
	case Updated:
		s.Name, s.Price = e.Name, e.Price
	case Restocked:
		s.Restocked += e.Quantity
		s.Stock += e.Quantity
	case Reserved:
		s.Stock -= e.Quantity
		s.Reserved += e.Quantity
		s.reservations = withReservation(s.reservations, e.OrderID, e.Quantity)
	case Released:
		s.Stock += e.Quantity
		s.Reserved -= e.Quantity
		s.reservations = withReservation(s.reservations, e.OrderID, 0)
	case Sold:
		s.Sold += e.Quantity
		s.Reserved -= e.Quantity
		s.reservations = withReservation(s.reservations, e.OrderID, 0)
	}
	return s
}

// withReservation returns a copy of r with order's reservation set to n
// (removed for 0).
func withReservation(r map[string]int64, order string, n int64) map[string]int64 {
	out := make(map[string]int64, len(r)+1)
	maps.Copy(out, r)
	if n == 0 {
		delete(out, order)
	} else {
		out[order] = n
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Check returns what is wrong with e following an item at before: the
// rules Decide keeps, and units conserved, for verify to run over a log.
func Check(before State, e Event) error {
	after := Evolve(before, e)
	switch {
	case e.Version != before.Version+1:
		return fmt.Errorf("%s at version %d after version %d", e.Type, e.Version, before.Version)
	case (e.Type == Added) == before.Exists():
		return fmt.Errorf("%s on an item that exists: %v", e.Type, before.Exists())
	case e.StockAfter != after.Stock:
		return fmt.Errorf("%s says %d in stock after it, there are %d", e.Type, e.StockAfter, after.Stock)
	case after.Stock < 0 || after.Reserved < 0 || after.Sold < 0:
		return fmt.Errorf("%s leaves stock %d, reserved %d, sold %d", e.Type, after.Stock, after.Reserved, after.Sold)
	case after.Initial+after.Restocked != after.Stock+after.Reserved+after.Sold:
		return fmt.Errorf("%s: initial %d + restocked %d != stock %d + reserved %d + sold %d",
			e.Type, after.Initial, after.Restocked, after.Stock, after.Reserved, after.Sold)
	}
	held, ok := before.reservations[e.OrderID]
	switch e.Type {
	case Reserved:
		if ok || e.Quantity < 1 || e.Quantity > before.Stock {
			return fmt.Errorf("reserved %d for order %s with %d in stock (held already: %v)", e.Quantity, e.OrderID, before.Stock, ok)
		}
	case ReservationRejected:
		if e.Quantity <= before.Stock || e.Reason != ReasonOutOfStock {
			return fmt.Errorf("reservation of %d rejected (%s) with %d in stock", e.Quantity, e.Reason, before.Stock)
		}
	case Released, Sold:
		if !ok || held != e.Quantity {
			return fmt.Errorf("%s %d for order %s, which held %d (%v)", e.Type, e.Quantity, e.OrderID, held, ok)
		}
	}
	var sum int64
	for _, n := range after.reservations {
		sum += n
	}
	if sum != after.Reserved {
		return fmt.Errorf("%s: reservations add up to %d, reserved is %d", e.Type, sum, after.Reserved)
	}
	return nil
}

package wallet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/engine"
)

// Name is the wallet domain's name: its streams are wallet.<id> in Redis and
// its commands travel on cmd.wallet.<id>.<action>.
const Name = "wallet"

// The lists beside a wallet's state in Redis, in the order ListEntry
// counts them: applied transactions, and refused debits.
var lists = []string{ListTransactions, ListRejected}

const (
	listApplied  = 0
	listRejected = 1
)

// ListTransactions and ListRejected name a wallet's two lists in Redis.
const (
	ListTransactions = "tx"
	ListRejected     = "rejected"
)

// View is a wallet's state as Redis holds it at wallet.<id>. Its first four
// fields are the balance read's, in this order (DecodeBalance reads them
// without reflection); the lifecycle follows, its defaults left out (open,
// no owner, no metadata, no overdraft), so that the wallets that only take
// credits and debits cost Redis and every read few bytes more than before
// they had a lifecycle.
type View struct {
	WalletID       string            `json:"wallet_id"`
	Balance        int64             `json:"balance"`
	Version        int64             `json:"version"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Held           int64             `json:"held,omitempty"`
	Status         Status            `json:"status,omitempty"` // open
	Owner          string            `json:"owner,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	OverdraftLimit int64             `json:"overdraft_limit,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
}

// NewView is the view of wallet id at s, its newest event at at.
func NewView(id string, s State, at time.Time) View {
	l := s.Life()
	v := View{WalletID: id, Balance: s.Balance, Version: s.Version, UpdatedAt: at.UTC(), Held: s.Held(), Owner: l.Owner,
		Metadata: l.Metadata, OverdraftLimit: l.OverdraftLimit, CreatedAt: s.CreatedAt()}
	if l.Status != StatusOpen {
		v.Status = l.Status
	}
	return v
}

// Wallet is a wallet as the API shows it: GET /wallet/{id}, and the answer
// to open, update, freeze, unfreeze and close.
type Wallet struct {
	WalletID       string            `json:"wallet_id"`
	Status         Status            `json:"status"`
	Owner          string            `json:"owner"`
	Metadata       map[string]string `json:"metadata"`
	OverdraftLimit int64             `json:"overdraft_limit"`
	Balance        int64             `json:"balance"`
	Available      int64             `json:"available"`
	Held           int64             `json:"held"`
	Version        int64             `json:"version"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// Wallet is the view as the API shows it.
func (v View) Wallet() Wallet {
	md := v.Metadata
	if md == nil {
		md = map[string]string{}
	}
	status := v.Status
	if status == "" {
		status = StatusOpen
	}
	return Wallet{WalletID: v.WalletID, Status: status, Owner: v.Owner, Metadata: md, OverdraftLimit: v.OverdraftLimit,
		Balance: v.Balance, Available: v.Balance - v.Held, Held: v.Held, Version: v.Version, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
}

// Result is a successful credit or debit: the wallet after the command and
// the transaction it recorded. Its JSON is the HTTP response body.
type Result struct {
	WalletID    string      `json:"wallet_id"`
	Balance     int64       `json:"balance"`
	Version     int64       `json:"version"`
	Timestamp   time.Time   `json:"timestamp"`
	Transaction Transaction `json:"transaction"`
}

// appendJSON appends exactly what encoding/json makes of r (a test holds
// the two equal), as Transaction.appendJSON does.
func (r Result) appendJSON(b []byte) []byte {
	if !plainASCII(r.WalletID) || !jsonTime(r.Timestamp) {
		out, _ := json.Marshal(r)
		return append(b, out...)
	}
	b = append(b, `{"wallet_id":"`...)
	b = append(b, r.WalletID...)
	b = append(b, `","balance":`...)
	b = strconv.AppendInt(b, r.Balance, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"timestamp":"`...)
	b = r.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","transaction":`...)
	b = r.Transaction.appendJSON(b)
	return append(b, '}')
}

// Domain is the wallet domain as the engine hosts it: Decide and Evolve
// above, with the codecs and the read model around them.
type Domain struct{}

var _ engine.Domain[State, Command, Event] = Domain{}

// Name is "wallet".
func (Domain) Name() string { return Name }

// Actions are the wallet's actions on the bus (Actions).
func (Domain) Actions() []string {
	out := make([]string, len(Actions))
	for i, a := range Actions {
		out[i] = string(a)
	}
	return out
}

// CheckID accepts a KSUID: any valid KSUID is a wallet.
func (Domain) CheckID(id string) *bus.Error {
	if _, err := ksuid.Parse(id); err != nil {
		return &bus.Error{Code: bus.CodeInvalidWalletID, Detail: fmt.Sprintf("wallet id %q is not a KSUID", id)}
	}
	return nil
}

// CommandData is the data of a credit or a debit on the bus.
type CommandData struct {
	Amount int64 `json:"amount"`
}

// EncodeCommandData is the data wallet_server sends with a credit or a debit.
func EncodeCommandData(amount int64) []byte {
	return append(strconv.AppendInt([]byte(`{"amount":`), amount, 10), '}')
}

// ProfileData is the data of open and update on the bus, and the body of
// POST /wallet and PATCH /wallet/{id}: in an update, a metadata key with
// null is removed.
type ProfileData struct {
	Owner          *string            `json:"owner,omitempty"`
	Metadata       map[string]*string `json:"metadata,omitempty"`
	OverdraftLimit *int64             `json:"overdraft_limit,omitempty"`
}

// DecodeCommand reads {"amount": N} for a credit or a debit, a ProfileData
// for open and update, and nothing (or {}) for freeze, unfreeze and close.
func (Domain) DecodeCommand(action string, data []byte) (Command, *bus.Error) {
	a, err := ParseAction(action)
	if err != nil {
		return Command{}, &bus.Error{Code: bus.CodeNotFound, Detail: err.Error()}
	}
	c := Command{Action: a}
	switch a {
	case Credit, Debit:
		amount, ok := plainCommandData(data)
		if !ok {
			var d CommandData
			if err := bus.DecodeStrict(data, &d); err != nil {
				return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command data must be {\"amount\": N}"}
			}
			amount = d.Amount
		}
		if amount <= 0 || amount > MaxAmount {
			return Command{}, &bus.Error{Code: bus.CodeInvalidAmount, Detail: ErrInvalidAmount.Error()}
		}
		c.Amount = amount
	case Open, Update:
		var d ProfileData
		if len(bytes.TrimSpace(data)) > 0 {
			if err := bus.DecodeStrict(data, &d); err != nil {
				return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command data must be {\"owner\", \"metadata\", \"overdraft_limit\"}: " + err.Error()}
			}
		}
		c.Profile = Profile{Owner: d.Owner, Metadata: d.Metadata, OverdraftLimit: d.OverdraftLimit}
		if err := c.Profile.check(a == Update); err != nil {
			return Command{}, refusalOf(err, State{})
		}
	case PlaceHold, CaptureHold, VoidHold:
		var d HoldData
		if err := bus.DecodeStrict(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command data must be {\"hold_id\", \"amount\", \"expires_in\", \"transfer_id\"}: " + err.Error()}
		}
		c.HoldID, c.Amount, c.ExpiresIn, c.TransferID = d.HoldID, d.Amount, time.Duration(d.ExpiresIn)*time.Second, d.TransferID
		if (a == VoidHold && d.Amount != 0) || (a != PlaceHold && d.ExpiresIn != 0) || d.ExpiresIn > int64(MaxHoldExpiry/time.Second) {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: action + " takes " + map[Action]string{
				PlaceHold: "hold_id, amount and expires_in", CaptureHold: "hold_id and an amount", VoidHold: "hold_id alone"}[a]}
		}
		if err := c.checkHold(); err != nil {
			return Command{}, refusalOf(err, State{})
		}
	case Reverse:
		var d ReverseData
		if err := bus.DecodeStrict(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: `command data must be {"tx_id"}: ` + err.Error()}
		}
		if _, err := ksuid.Parse(d.TxID); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidTransactionID, Detail: fmt.Sprintf("transaction id %q is not a KSUID", d.TxID)}
		}
		c.Reverses = d.TxID
	case TransferIn, TransferOut:
		var d LegData
		if err := bus.DecodeStrict(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command data must be {\"transfer_id\", \"counterpart\", \"amount\"}: " + err.Error()}
		}
		c.TransferID, c.Counterpart, c.Amount, c.OrderID = d.TransferID, d.Counterpart, d.Amount, d.OrderID
		if err := c.checkLeg(); err != nil {
			return Command{}, refusalOf(err, State{})
		}
	default:
		if t := bytes.TrimSpace(data); len(t) > 0 && string(t) != "{}" {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: action + " takes no data"}
		}
	}
	return c, nil
}

// HoldData is the data of hold, capture and void on the bus: for a hold,
// its amount and how many seconds it lasts; for a capture, the amount to
// capture (0 or absent: all of it).
// A transfer's hold and its void name the transfer (no expires_in: it does
// not expire).
type HoldData struct {
	HoldID     string `json:"hold_id"`
	Amount     int64  `json:"amount,omitempty"`
	ExpiresIn  int64  `json:"expires_in,omitempty"`
	TransferID string `json:"transfer_id,omitempty"`
}

// ReverseData is the data of reverse on the bus: the transaction (event
// id) to take back.
type ReverseData struct {
	TxID string `json:"tx_id"`
}

// LegData is the data of transfer_in (with the amount) and transfer_out
// (without: it captures the transfer's hold) on the bus: the transfer, and
// the wallet on its other side.
type LegData struct {
	TransferID  string `json:"transfer_id"`
	Counterpart string `json:"counterpart"`
	Amount      int64  `json:"amount,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
}

// plainCommandData reads exactly what EncodeCommandData writes.
func plainCommandData(b []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"amount":`))
	if !ok {
		return 0, false
	}
	digits, ok := bytes.CutSuffix(rest, []byte(`}`))
	if !ok || len(digits) == 0 || len(digits) > 16 || digits[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil
}

// Fingerprint is "credit:500" or "debit:500" (as it was before wallets had
// a lifecycle, so that the keys of those commands replay), the action for
// freeze, unfreeze and close, and the action with its profile, in a stable
// form, for open and update.
func (Domain) Fingerprint(c Command) string {
	switch c.Action {
	case Credit, Debit:
		return string(c.Action) + ":" + strconv.FormatInt(c.Amount, 10)
	case Open, Update:
		b, _ := json.Marshal(ProfileData{Owner: c.Profile.Owner, Metadata: c.Profile.Metadata, OverdraftLimit: c.Profile.OverdraftLimit})
		return string(c.Action) + ":" + string(b) // encoding/json sorts map keys
	case PlaceHold, CaptureHold, VoidHold:
		b, _ := json.Marshal(HoldData{HoldID: c.HoldID, Amount: c.Amount, ExpiresIn: int64(c.ExpiresIn / time.Second), TransferID: c.TransferID})
		return string(c.Action) + ":" + string(b)
	case TransferIn, TransferOut:
		b, _ := json.Marshal(LegData{TransferID: c.TransferID, Counterpart: c.Counterpart, Amount: c.Amount, OrderID: c.OrderID})
		return string(c.Action) + ":" + string(b)
	case Reverse:
		return string(c.Action) + ":" + c.Reverses
	}
	return string(c.Action)
}

// Decide is the package's Decide at the engine's time, with its errors as
// the API's refusals.
func (Domain) Decide(s State, c Command, at time.Time) ([]Event, *bus.Error) {
	c.At = at
	if c.Action == ExpireHolds {
		if evs := DueExpiries(s, at); len(evs) > 0 {
			return evs, nil
		}
		return nil, &bus.Error{Code: bus.CodeInvalidBody, Detail: ErrNothingDue.Error()}
	}
	e, err := Decide(s, c)
	if err != nil {
		if errors.Is(err, ErrBalanceOverflow) {
			return nil, &bus.Error{Code: bus.CodeBalanceOverflow,
				Detail: fmt.Sprintf("crediting %d would overflow the balance of %d", c.Amount, s.Balance), Fields: walletFields(s)}
		}
		return nil, refusalOf(err, s)
	}
	return []Event{e}, nil
}

// refusalOf is the API's refusal for an error of Decide.
func refusalOf(err error, s State) *bus.Error {
	code := bus.CodeInvalidBody
	switch {
	case errors.Is(err, ErrInvalidAmount):
		code = bus.CodeInvalidAmount
	case errors.Is(err, ErrInvalidOwner):
		code = bus.CodeInvalidOwner
	case errors.Is(err, ErrInvalidMetadata):
		code = bus.CodeInvalidMetadata
	case errors.Is(err, ErrInvalidOverdraft):
		code = bus.CodeInvalidOverdraftLimit
	case errors.Is(err, ErrNotFound):
		return &bus.Error{Code: bus.CodeWalletNotFound, Detail: "no wallet has this id: open one with POST /wallet, or credit it"}
	case errors.Is(err, ErrExists):
		return &bus.Error{Code: bus.CodeWalletExists, Detail: "a wallet with this id exists already", Fields: walletFields(s)}
	case errors.Is(err, ErrInvalidHoldID):
		code = bus.CodeInvalidHoldID
	case errors.Is(err, ErrInvalidExpiry):
		code = bus.CodeInvalidExpiry
	case errors.Is(err, ErrHoldExists):
		return &bus.Error{Code: bus.CodeHoldExists, Detail: err.Error(), Fields: walletFields(s)}
	case errors.Is(err, ErrCaptureTooMuch):
		return &bus.Error{Code: bus.CodeCaptureExceeds, Detail: err.Error(), Fields: walletFields(s)}
	case errors.Is(err, ErrHoldOwned):
		return &bus.Error{Code: bus.CodeHoldOwned, Detail: err.Error()}
	case errors.Is(err, ErrInvalidTransferID):
		code = bus.CodeInvalidTransferID
	case errors.Is(err, ErrInvalidTransactionID):
		code = bus.CodeInvalidTransactionID
	case errors.Is(err, ErrTransactionNotFound):
		return &bus.Error{Code: bus.CodeTransactionNotFound, Detail: err.Error()}
	case errors.Is(err, ErrNotReversible):
		return &bus.Error{Code: bus.CodeNotReversible, Detail: err.Error() + "; a transfer is reversed with POST /transfers/{id}/reverse", Fields: walletFields(s)}
	case errors.Is(err, ErrAlreadyReversed):
		return &bus.Error{Code: bus.CodeAlreadyReversed, Detail: err.Error(), Fields: walletFields(s)}
	}
	return &bus.Error{Code: code, Detail: err.Error()}
}

// walletFields are the members a refusal that depends on the wallet adds to
// its problem: the balance and version it was decided against.
func walletFields(s State) json.RawMessage {
	b := strconv.AppendInt([]byte(`{"balance":`), s.Balance, 10)
	if held := s.Held(); held != 0 {
		b = strconv.AppendInt(append(b, `,"available":`...), s.Balance-held, 10)
		b = strconv.AppendInt(append(b, `,"held":`...), held, 10)
	}
	b = strconv.AppendInt(append(b, `,"version":`...), s.Version, 10)
	return append(b, '}')
}

// Evolve is the package's Evolve.
func (Domain) Evolve(s State, e Event) State { return Evolve(s, e) }

// Version is s.Version.
func (Domain) Version(s State) int64 { return s.Version }

// EncodeEvent stores e at SchemaVersion.
func (Domain) EncodeEvent(e Event) (engine.Encoded, error) {
	data, err := EncodeEvent(e)
	return engine.Encoded{Type: string(e.Type), Schema: SchemaVersion, Data: data}, err
}

// DecodeEvent reads a stored event, recorded at at.
func (Domain) DecodeEvent(typ string, schema int, version int64, at time.Time, data []byte) (Event, error) {
	e, err := DecodeEvent(EventType(typ), schema, version, data)
	e.At = at
	return e, err
}

// stateData is the stored form of a State but its version, which is the
// row's. Defaults are left out: a wallet that only ever took credits and
// debits is {"balance":N,"created":T}.
type stateData struct {
	Balance        int64             `json:"balance"`
	Status         Status            `json:"status,omitempty"` // open
	Opened         bool              `json:"opened,omitempty"`
	Owner          string            `json:"owner,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	OverdraftLimit int64             `json:"overdraft_limit,omitempty"`
	Created        int64             `json:"created,omitempty"` // Unix nanoseconds
	Holds          map[string]Hold   `json:"holds,omitempty"`
	Reversed       []int64           `json:"reversed,omitempty"` // in order
}

// EncodeState stores s, but its version.
func (Domain) EncodeState(s State) []byte {
	if s.life == nil && s.holds == nil && s.reversed == nil {
		// The state of nearly every event: written without reflection.
		b := strconv.AppendInt([]byte(`{"balance":`), s.Balance, 10)
		if s.Created != 0 {
			b = strconv.AppendInt(append(b, `,"created":`...), s.Created, 10)
		}
		return append(b, '}')
	}
	l := s.Life()
	d := stateData{Balance: s.Balance, Opened: l.Opened, Owner: l.Owner, Metadata: l.Metadata, OverdraftLimit: l.OverdraftLimit, Created: s.Created, Holds: s.holds}
	for v := range s.reversed {
		d.Reversed = append(d.Reversed, v)
	}
	slices.Sort(d.Reversed)
	if l.Status != StatusOpen {
		d.Status = l.Status
	}
	b, _ := json.Marshal(d)
	return b
}

// ErrBadState is returned for a stored state that is not a wallet's.
var ErrBadState = errors.New("not a wallet state")

// DecodeState reads what EncodeState writes, and what a log of schema 2
// held, {"balance":N}.
func (Domain) DecodeState(version int64, data []byte) (State, error) {
	var d stateData
	if err := bus.DecodeStrict(data, &d); err != nil || version < 0 {
		return State{}, fmt.Errorf("%q at v%d: %w", data, version, ErrBadState)
	}
	switch d.Status {
	case "", StatusFrozen, StatusClosed:
	default: // open is left out, never written
		return State{}, fmt.Errorf("%q at v%d: status %q: %w", data, version, d.Status, ErrBadState)
	}
	for id, h := range d.Holds {
		if CheckHoldID(id) != nil || h.Amount <= 0 || h.Amount > MaxAmount || (h.ExpiresAt == 0) != IsTransferHold(id) {
			return State{}, fmt.Errorf("%q at v%d: hold %q: %w", data, version, id, ErrBadState)
		}
	}
	if len(d.Holds) == 0 {
		d.Holds = nil
	}
	s := State{Balance: d.Balance, Version: version, Created: d.Created, holds: d.Holds}
	for i, v := range d.Reversed {
		if v < 1 || v >= version || (i > 0 && v <= d.Reversed[i-1]) {
			return State{}, fmt.Errorf("%q at v%d: reversed %d: %w", data, version, v, ErrBadState)
		}
		if s.reversed == nil {
			s.reversed = map[int64]struct{}{}
		}
		s.reversed[v] = struct{}{}
	}
	return s.WithLife(Lifecycle{Status: d.Status, Opened: d.Opened, Owner: d.Owner, Metadata: d.Metadata, OverdraftLimit: d.OverdraftLimit}), nil
}

// View is the wallet at wallet.<id>.
func (Domain) View(id string, s State, at time.Time) []byte {
	return NewView(id, s, at).appendJSON(make([]byte, 0, 160))
}

// appendJSON appends exactly what encoding/json makes of v (a test holds
// the two equal): the writer encodes a view for every wallet of every
// batch, and reflection was the larger part of it. A view with a lifecycle
// beyond the default, or an id that would need escaping, goes to
// encoding/json.
func (v View) appendJSON(b []byte) []byte {
	if v.Status != "" || v.Owner != "" || v.Metadata != nil || v.OverdraftLimit != 0 || !plainASCII(v.WalletID) ||
		!jsonTime(v.UpdatedAt) || !jsonTime(v.CreatedAt) {
		out, _ := json.Marshal(v)
		return append(b, out...)
	}
	b = append(b, `{"wallet_id":"`...)
	b = append(b, v.WalletID...)
	b = append(b, `","balance":`...)
	b = strconv.AppendInt(b, v.Balance, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, v.Version, 10)
	b = append(b, `,"updated_at":"`...)
	b = v.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
	if v.Held != 0 {
		b = append(b, `","held":`...)
		b = strconv.AppendInt(b, v.Held, 10)
		b = append(b, `,"created_at":"`...)
	} else {
		b = append(b, `","created_at":"`...)
	}
	b = v.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// plainASCII reports whether s needs no escaping in JSON.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// jsonTime reports whether encoding/json writes t as AppendFormat with
// RFC3339Nano does: a year of four digits.
func jsonTime(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

// Indexed: no index; a client knows its ids.
func (Domain) Indexed() bool { return false }

// Lists are tx (applied transactions) and rejected (refused debits).
func (Domain) Lists() []string { return lists }

// ListEntry lists credits, debits and captures as transactions: applied
// ones in tx, refused ones (and refused holds) in rejected. The lifecycle
// and the holds are in the wallet's state and its holds hash, not in its
// statement.
func (Domain) ListEntry(_ string, e Event, eventID string, at time.Time) (int, []byte, bool) {
	switch e.Type {
	case Credited, Debited, HoldCaptured, TransferredIn, TransferredOut, Reversal:
		return listApplied, NewTransaction(eventID, e, at).appendJSON(make([]byte, 0, 128)), true
	case DebitRejected, CreditRejected, HoldRejected, TransferInRejected, ReversalRejected:
		return listRejected, NewTransaction(eventID, e, at).appendJSON(make([]byte, 0, 128)), true
	}
	return 0, nil, false
}

// HashHolds names the wallet's hash of holds in Redis,
// {wallet.<id>}.holds: a HoldView per hold id.
const HashHolds = "holds"

// Hashes is the holds hash.
func (Domain) Hashes() []string { return hashes }

// hashes is what Hashes returns: one slice for every change of every batch.
var hashes = []string{HashHolds}

// HashFields sets a hold's field when it is made and when it ends.
func (Domain) HashFields(id string, e Event, at time.Time) []engine.HashField {
	v, ok := NewHoldView(id, e, at)
	if !ok {
		return nil
	}
	b, _ := json.Marshal(v)
	return []engine.HashField{{Hash: 0, Field: v.HoldID, Value: b}}
}

// Alarm is the earliest expiry of the wallet's active holds: then the
// writer expires every hold that is due.
func (Domain) Alarm(s State) (time.Time, Command, bool) {
	at, ok := s.nextExpiry()
	if !ok {
		return time.Time{}, Command{}, false
	}
	return time.Unix(0, at).UTC(), Command{Action: ExpireHolds}, true
}

// Refers names the transaction a reversal takes back.
func (Domain) Refers(c Command) string {
	if c.Action == Reverse {
		return c.Reverses
	}
	return ""
}

// Attach gives a reversal the transaction it takes back, as the log holds
// it (nil: the wallet has none with that id).
func (Domain) Attach(c Command, e Event, found bool) Command {
	if found {
		c.Original = &e
	}
	return c
}

// Answer is, for a credit or a debit, the wallet's balance with the
// transaction the command recorded; for the lifecycle, the wallet; for a
// refusal, its code with the balance and version it was decided against.
func (Domain) Answer(id string, e Event, s State, eventID string, at time.Time) engine.Answer {
	switch e.Type {
	case Credited, Debited, TransferredIn, TransferredOut, Reversal:
		r := Result{WalletID: id, Balance: s.Balance, Version: s.Version, Timestamp: at, Transaction: NewTransaction(eventID, e, at)}
		return engine.Answer{Result: r.appendJSON(make([]byte, 0, 256))}
	case DebitRejected, CreditRejected, CommandRejected, HoldRejected, TransferInRejected, ReversalRejected:
		return engine.Answer{Refusal: rejection(e, s)}
	case Held, HoldCaptured, HoldVoided, HoldExpired:
		v, _ := NewHoldView(id, e, at)
		res, _ := json.Marshal(HoldResult{HoldView: v, Balance: s.Balance, Available: s.Available(), Held: s.Held()})
		return engine.Answer{Result: res}
	}
	res, _ := json.Marshal(NewView(id, s, at).Wallet())
	return engine.Answer{Result: res}
}

// rejection is the refusal a rejection event records.
func rejection(e Event, s State) *bus.Error {
	r := &bus.Error{Fields: walletFields(s)}
	switch e.Reason {
	case ReasonInsufficientFunds:
		r.Code = bus.CodeInsufficientFunds
		what, have := "balance", s.Balance
		if s.holds != nil {
			what, have = "available balance", s.Available()
		}
		kind := "debit"
		switch e.Type {
		case HoldRejected:
			kind = "hold"
		case ReversalRejected:
			kind = "reversal of a credit"
		}
		r.Detail = fmt.Sprintf("the %s of %d does not cover a %s of %d", what, have, kind, e.Amount)
		if limit := s.overdraftLimit(); limit > 0 {
			r.Detail = fmt.Sprintf("the %s of %d and the overdraft limit of %d do not cover a %s of %d", what, have, limit, kind, e.Amount)
		}
	case ReasonFrozen:
		r.Code = bus.CodeWalletFrozen
		r.Detail = "the wallet is frozen: it takes credits, and refuses debits until it is unfrozen"
		if e.Type == CommandRejected {
			r.Detail = "the wallet is frozen already"
		}
	case ReasonClosed:
		r.Code, r.Detail = bus.CodeWalletClosed, "the wallet is closed: it takes no more commands"
	case ReasonNotFrozen:
		r.Code, r.Detail = bus.CodeWalletNotFrozen, "the wallet is not frozen"
	case ReasonBalanceNotZero:
		r.Code, r.Detail = bus.CodeBalanceNotZero, fmt.Sprintf("only a wallet at balance 0 can close; this one holds %d", s.Balance)
	case ReasonHoldNotActive:
		r.Code, r.Detail = bus.CodeHoldNotActive, fmt.Sprintf("hold %q is not active: it was captured, voided or expired", e.HoldID)
	case ReasonHoldsActive:
		r.Code, r.Detail = bus.CodeHoldsActive, fmt.Sprintf("a wallet with active holds cannot close; this one has %d holding %d", len(s.holds), s.Held())
	case ReasonBalanceOverflow:
		r.Code, r.Detail = bus.CodeBalanceOverflow, fmt.Sprintf("%d more would overflow the balance of %d", e.Amount, s.Balance)
	}
	return r
}

// Check holds every event to the wallet's rules: money moves only on an
// open wallet (credits on a frozen one too), never below the overdraft
// limit, and each event's balance_after is what its wallet sums to; a
// refusal is recorded only when its reason held; a closed wallet is at
// balance 0 and changes no more.
func (Domain) Check(before State, e Event, after State) error {
	st := before.status()
	if err := checkHoldEvent(before, e, after); err != nil {
		return err
	}
	if err := checkLegEvent(before, e); err != nil {
		return err
	}
	if err := checkReversal(before, e, after); err != nil {
		return err
	}
	switch {
	case e.Type == Opened && before.Exists():
		return fmt.Errorf("opens a wallet that exists")
	case st == StatusClosed && !e.Rejection():
		return fmt.Errorf("%s on a closed wallet", e.Type)
	case e.Applied() || e.Type == DebitRejected || e.Type == CreditRejected || e.Type == HoldRejected || e.Type == TransferInRejected || e.Type == ReversalRejected:
		if e.BalanceAfter != after.Balance {
			return fmt.Errorf("says balance %d, its events sum to %d", e.BalanceAfter, after.Balance)
		}
	}
	switch e.Type {
	case Debited:
		if st != StatusOpen {
			return fmt.Errorf("debits %d from a %s wallet", e.Amount, st)
		}
		if after.Available() < -before.overdraftLimit() {
			return fmt.Errorf("debits to %d available, below the overdraft limit of %d", after.Available(), before.overdraftLimit())
		}
	case DebitRejected, CreditRejected, CommandRejected, HoldRejected, TransferInRejected, ReversalRejected:
		ok := false
		switch e.Reason {
		case ReasonInsufficientFunds:
			ok = st == StatusOpen && before.Available()-e.Amount < -before.overdraftLimit()
		case ReasonFrozen:
			ok = st == StatusFrozen
		case ReasonClosed:
			ok = st == StatusClosed
		case ReasonNotFrozen:
			ok = st != StatusFrozen
		case ReasonBalanceNotZero:
			ok = before.Balance != 0
		case ReasonHoldNotActive:
			ok = !hasHold(before, e.HoldID)
		case ReasonHoldsActive:
			ok = before.holds != nil
		case ReasonBalanceOverflow:
			ok = before.Balance > math.MaxInt64-e.Amount
		}
		if !ok {
			return fmt.Errorf("refuses %s %d for %s, which did not hold (balance %d, available %d, overdraft limit %d, %s)",
				e.Type, e.Amount, e.Reason, before.Balance, before.Available(), before.overdraftLimit(), st)
		}
	case Closed:
		if before.Balance != 0 || before.holds != nil {
			return fmt.Errorf("closes a wallet holding %d, %d of it in holds", before.Balance, before.Held())
		}
	case Frozen:
		if st != StatusOpen {
			return fmt.Errorf("freezes a %s wallet", st)
		}
	case Unfrozen:
		if st != StatusFrozen {
			return fmt.Errorf("unfreezes a %s wallet", st)
		}
	}
	if after.status() == StatusClosed && after.Balance != 0 {
		return fmt.Errorf("a closed wallet holds %d", after.Balance)
	}
	return nil
}

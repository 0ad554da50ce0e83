package wallet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// View is a wallet's state as Redis holds it at wallet.<id>.
type View struct {
	WalletID  string    `json:"wallet_id"`
	Balance   int64     `json:"balance"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
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

// Domain is the wallet domain as the engine hosts it: Decide and Evolve
// above, with the codecs and the read model around them.
type Domain struct{}

var _ engine.Domain[State, Command, Event] = Domain{}

// Name is "wallet".
func (Domain) Name() string { return Name }

// Actions are credit and debit.
func (Domain) Actions() []string { return []string{string(Credit), string(Debit)} }

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

// DecodeCommand reads {"amount": N} for a credit or a debit.
func (Domain) DecodeCommand(action string, data []byte) (Command, *bus.Error) {
	a, err := ParseAction(action)
	if err != nil {
		return Command{}, &bus.Error{Code: bus.CodeNotFound, Detail: err.Error()}
	}
	amount, ok := plainCommandData(data)
	if !ok {
		var d CommandData
		if err := strictUnmarshal(data, &d); err != nil {
			return Command{}, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command data must be {\"amount\": N}"}
		}
		amount = d.Amount
	}
	if amount <= 0 || amount > MaxAmount {
		return Command{}, &bus.Error{Code: bus.CodeInvalidAmount, Detail: ErrInvalidAmount.Error()}
	}
	return Command{Action: a, Amount: amount}, nil
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

// Fingerprint is "credit:500" or "debit:500".
func (Domain) Fingerprint(c Command) string {
	return string(c.Action) + ":" + strconv.FormatInt(c.Amount, 10)
}

// Decide is the package's Decide, with its errors as the API's refusals.
func (Domain) Decide(s State, c Command) ([]Event, *bus.Error) {
	e, err := Decide(s, c)
	switch {
	case errors.Is(err, ErrBalanceOverflow):
		return nil, &bus.Error{Code: bus.CodeBalanceOverflow,
			Detail: fmt.Sprintf("crediting %d would overflow the balance of %d", c.Amount, s.Balance), Fields: walletFields(s)}
	case errors.Is(err, ErrInvalidAmount):
		return nil, &bus.Error{Code: bus.CodeInvalidAmount, Detail: err.Error()}
	case err != nil:
		return nil, &bus.Error{Code: bus.CodeInvalidBody, Detail: err.Error()}
	}
	return []Event{e}, nil
}

// walletFields are the members a refusal that depends on the wallet adds to
// its problem: the balance and version it was decided against.
func walletFields(s State) json.RawMessage {
	b := strconv.AppendInt([]byte(`{"balance":`), s.Balance, 10)
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

// DecodeEvent reads a stored event.
func (Domain) DecodeEvent(typ string, schema int, version int64, data []byte) (Event, error) {
	return DecodeEvent(EventType(typ), schema, version, data)
}

// EncodeState is {"balance":N}; the version is the row's.
func (Domain) EncodeState(s State) []byte {
	return append(strconv.AppendInt([]byte(`{"balance":`), s.Balance, 10), '}')
}

// ErrBadState is returned for a stored state that is not a wallet's.
var ErrBadState = errors.New("not a wallet state")

// DecodeState reads what EncodeState writes.
func (Domain) DecodeState(version int64, data []byte) (State, error) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"balance":`))
	if ok {
		rest, ok = bytes.CutSuffix(rest, []byte(`}`))
	}
	balance, err := strconv.ParseInt(string(rest), 10, 64)
	if !ok || err != nil || version < 0 {
		return State{}, fmt.Errorf("%q at v%d: %w", data, version, ErrBadState)
	}
	return State{Balance: balance, Version: version}, nil
}

// View is the wallet at wallet.<id>.
func (Domain) View(id string, s State, at time.Time) []byte {
	b, _ := json.Marshal(View{WalletID: id, Balance: s.Balance, Version: s.Version, UpdatedAt: at})
	return b
}

// Lists are tx (applied transactions) and rejected (refused debits).
func (Domain) Lists() []string { return lists }

// ListEntry lists every event as a transaction: applied ones in tx, refused
// debits in rejected.
func (Domain) ListEntry(_ string, e Event, eventID string, at time.Time) (int, []byte, bool) {
	member, _ := json.Marshal(NewTransaction(eventID, e, at))
	if e.Applied() {
		return listApplied, member, true
	}
	return listRejected, member, true
}

// Answer is the wallet with the transaction the command recorded, or for a
// refused debit, insufficient_funds with the balance it was refused against.
func (Domain) Answer(id string, e Event, s State, eventID string, at time.Time) engine.Answer {
	if e.Type == DebitRejected {
		return engine.Answer{Refusal: &bus.Error{Code: bus.CodeInsufficientFunds,
			Detail: fmt.Sprintf("the balance of %d does not cover a debit of %d", s.Balance, e.Amount), Fields: walletFields(s)}}
	}
	res, _ := json.Marshal(Result{WalletID: id, Balance: s.Balance, Version: s.Version, Timestamp: at, Transaction: NewTransaction(eventID, e, at)})
	return engine.Answer{Result: res}
}

// Check holds every event to the wallet's rules: a balance never below
// zero, an event's balance_after equal to what its wallet sums to, and a
// debit refused only when the balance did not cover it.
func (Domain) Check(before State, e Event, after State) error {
	switch {
	case e.Type == DebitRejected && e.Amount <= before.Balance:
		return fmt.Errorf("rejects a debit of %d that a balance of %d covers", e.Amount, before.Balance)
	case e.BalanceAfter != after.Balance:
		return fmt.Errorf("says balance %d, its events sum to %d", e.BalanceAfter, after.Balance)
	case after.Balance < 0:
		return fmt.Errorf("takes the balance to %d", after.Balance)
	}
	return nil
}

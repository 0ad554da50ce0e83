package wallet

import (
	"encoding/json"
	"strconv"
	"time"
)

// Transaction is how an event is shown to people: one line of a wallet's
// statement. Debits carry a negative Amount so a statement sums to the balance.
// Credits and debits are listed, applied or refused; the lifecycle is not.
type Transaction struct {
	ID           string    `json:"id"`
	Type         EventType `json:"type"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balance_after"`
	Version      int64     `json:"version"`
	Timestamp    time.Time `json:"timestamp"`
	HoldID       string    `json:"hold_id,omitempty"` // a capture's, or a refused hold's
	TransferID   string    `json:"transfer_id,omitempty"`
	Counterpart  string    `json:"counterpart,omitempty"` // the other wallet of a transfer
	OrderID      string    `json:"order_id,omitempty"`    // the order a transfer pays for
	Reverses     string    `json:"reverses,omitempty"`    // the transaction a reversal takes back
}

// NewTransaction shows e, recorded with id at t, as a statement line.
func NewTransaction(id string, e Event, t time.Time) Transaction {
	amount := e.Amount
	switch e.Type {
	case Debited, DebitRejected, HoldRejected, TransferredOut:
		amount = -amount
	case Reversal, ReversalRejected:
		amount = e.sign() * amount
	case HoldCaptured:
		amount = -e.Captured
	}
	return Transaction{ID: id, Type: e.Type, Amount: amount, BalanceAfter: e.BalanceAfter, Version: e.Version, Timestamp: t.UTC(), HoldID: e.HoldID,
		TransferID: e.TransferID, Counterpart: e.Counterpart, OrderID: e.OrderID, Reverses: e.Reverses}
}

// appendJSON appends exactly what encoding/json makes of t (a test holds
// the two equal): the writer encodes one for every credit and debit, as the
// member of its list in Redis and inside the answer, on the committer's
// path. An id that would need escaping, or a time encoding/json writes
// otherwise, goes to encoding/json.
func (t Transaction) appendJSON(b []byte) []byte {
	if t.HoldID != "" || t.TransferID != "" || t.Reverses != "" || !plainASCII(t.ID) || !plainASCII(string(t.Type)) || !jsonTime(t.Timestamp) {
		out, _ := json.Marshal(t)
		return append(b, out...)
	}
	b = append(b, `{"id":"`...)
	b = append(b, t.ID...)
	b = append(b, `","type":"`...)
	b = append(b, t.Type...)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, t.Amount, 10)
	b = append(b, `,"balance_after":`...)
	b = strconv.AppendInt(b, t.BalanceAfter, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, t.Version, 10)
	b = append(b, `,"timestamp":"`...)
	b = t.Timestamp.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

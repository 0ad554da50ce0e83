package wallet

import "time"

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
}

// NewTransaction shows e, recorded with id at t, as a statement line.
func NewTransaction(id string, e Event, t time.Time) Transaction {
	amount := e.Amount
	if e.Type == Debited || e.Type == DebitRejected {
		amount = -amount
	}
	return Transaction{ID: id, Type: e.Type, Amount: amount, BalanceAfter: e.BalanceAfter, Version: e.Version, Timestamp: t.UTC()}
}

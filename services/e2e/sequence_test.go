package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/wallet"
)

type result struct {
	WalletID    string             `json:"wallet_id"`
	Balance     int64              `json:"balance"`
	Version     int64              `json:"version"`
	Timestamp   time.Time          `json:"timestamp"`
	Transaction wallet.Transaction `json:"transaction"`
}

type txPage struct {
	WalletID     string               `json:"wallet_id"`
	Transactions []wallet.Transaction `json:"transactions"`
	Next         *string              `json:"next"`
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func TestTheDocumentedSequence(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()

	st, hdr, body := s.do("POST", "/wallet/"+id+"/debit", `{"amount": 5}`, nil)
	if st != http.StatusConflict {
		t.Fatalf("debit on a fresh wallet: %d %s", st, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("409 content type %q", ct)
	}
	p := decode[httpapi.Problem](t, body)
	if p.Code != bus.CodeInsufficientFunds || p.Status != 409 || p.Title == "" || p.Detail == "" || p.Type == "" {
		t.Fatalf("409 problem: %+v", p)
	}

	st, _, body = s.do("POST", "/wallet/"+id+"/credit", `{"amount": 5}`, nil)
	if st != http.StatusOK {
		t.Fatalf("credit 5: %d %s", st, body)
	}
	credit := decode[result](t, body)
	if credit.Balance != 5 || credit.WalletID != id || credit.Transaction.Amount != 5 || credit.Transaction.Type != wallet.Credited {
		t.Fatalf("credit 5: %+v", credit)
	}

	st, _, body = s.do("POST", "/wallet/"+id+"/debit", `{"amount": 5}`, nil)
	if st != http.StatusOK {
		t.Fatalf("debit 5: %d %s", st, body)
	}
	debit := decode[result](t, body)
	if debit.Balance != 0 || debit.Transaction.Amount != -5 || debit.Transaction.BalanceAfter != 0 || debit.Version <= credit.Version {
		t.Fatalf("debit 5: %+v after %+v", debit, credit)
	}

	st, _, body = s.do("GET", "/wallet/"+id+"/balance", "", nil)
	bal := decode[result](t, body)
	if st != http.StatusOK || bal.Balance != 0 || bal.Version != debit.Version {
		t.Fatalf("balance: %d %s", st, body)
	}

	st, _, body = s.do("GET", "/wallet/"+id+"/transactions", "", nil)
	page := decode[txPage](t, body)
	if st != http.StatusOK || len(page.Transactions) != 2 || page.Next != nil {
		t.Fatalf("transactions: %d %s", st, body)
	}
	if page.Transactions[0] != debit.Transaction || page.Transactions[1] != credit.Transaction {
		t.Fatalf("transactions not newest first or not as answered:\n got %+v\nwant %+v, %+v", page.Transactions, debit.Transaction, credit.Transaction)
	}

	st, _, body = s.do("GET", "/wallet/"+id+"/transactions?include=rejected", "", nil)
	page = decode[txPage](t, body)
	if st != http.StatusOK || len(page.Transactions) != 3 || page.Transactions[2].Type != wallet.DebitRejected {
		t.Fatalf("transactions with rejected: %d %s", st, body)
	}

	db := s.writerDB()
	if n := queryInt(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND type = 'debit_rejected' AND version = 1`, id); n != 1 {
		t.Fatalf("rejected debit in the event log %d times, want 1", n)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id); n != 3 {
		t.Fatalf("event log holds %d events, want 3", n)
	}

	// history_writer holds the same three events, once each.
	hdb := s.historyDB()
	eventually(t, 10*time.Second, "history has 3 events", func() bool {
		return queryInt(t, hdb, `SELECT COUNT(*) FROM events WHERE stream_id = ?`, id) == 3
	})
	rows, err := db.Query(`SELECT id FROM events WHERE domain = 'wallet' AND stream_id = ? ORDER BY version`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var eid string
		if err := rows.Scan(&eid); err != nil {
			t.Fatal(err)
		}
		if n := queryInt(t, hdb, `SELECT COUNT(*) FROM events WHERE event_id = ?`, eid); n != 1 {
			t.Fatalf("history holds event %s %d times", eid, n)
		}
	}
}

func decodeQuiet[T any](body []byte) T {
	var v T
	json.Unmarshal(body, &v) //nolint:errcheck // callers check the fields
	return v
}

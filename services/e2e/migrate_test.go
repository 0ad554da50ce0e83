package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer/pkg/httpapi"
	"coffer/pkg/wallet"
)

// The answers the build before the engine (schema version 2) gave when it
// wrote pkg/eventstore/testdata/v2, byte for byte.
const (
	fixtureWalletA  = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm"
	fixtureWalletB  = "2Qd2XfYhgT4SR29ezHMTSH1Ffqy"
	fixtureCreditA  = `{"wallet_id":"2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm","balance":500,"version":1,"timestamp":"2026-12-02T15:23:59.049206969Z","transaction":{"id":"3MvJK0w8XHZkISrECiZWVa43Gvw","type":"credited","amount":500,"balance_after":500,"version":1,"timestamp":"2026-12-02T15:23:59.049206969Z"}}`
	fixtureRefusedA = `{"type":"/problems/insufficient_funds","title":"Insufficient funds","status":409,"detail":"the balance of 300 does not cover a debit of 1000","code":"insufficient_funds","instance":"/wallet/2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm/debit","balance":300,"version":3}`
	fixtureCreditB  = `{"wallet_id":"2Qd2XfYhgT4SR29ezHMTSH1Ffqy","balance":49,"version":2,"timestamp":"2026-12-02T15:23:59.101053828Z","transaction":{"id":"3MvJJwx6GfOzNDIulUIdWlHWzdT","type":"credited","amount":42,"balance_after":49,"version":2,"timestamp":"2026-12-02T15:23:59.101053828Z"}}`
)

// TestAnOldDataDirMigrates starts the writer on a data dir written by the
// build before the engine: it migrates the log in place, every Idempotency-
// Key of it replays its first answer byte for byte, new commands continue
// each wallet, the read model is projected with the wallets' lifecycle,
// and the outbox goes on from its watermark (the five old events, already
// published then, are not published again).
func TestAnOldDataDirMigrates(t *testing.T) {
	s := startStack(t)
	s.stop("wallet_writer")
	old, err := os.ReadFile(filepath.Join("..", "..", "pkg", "eventstore", "testdata", "v2", "wallet_writer-p0.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dataDir, "wallet_writer-p0.db")
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	s.start("wallet_writer")
	s.waitReady()
	eventually(t, 10*time.Second, "the migrated wallets in Redis", func() bool {
		st, _, body := s.do("GET", "/wallet/"+fixtureWalletA+"/balance", "", nil)
		return st == 200 && decode[result](t, body).Balance == 300
	})
	if v := queryInt(t, s.writerDB(), `PRAGMA user_version`); v != 3 {
		t.Fatalf("schema version %d after the migration", v)
	}

	key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }
	for _, c := range []struct {
		path, body, key, want string
		status                int
	}{
		{"/wallet/" + fixtureWalletA + "/credit", `{"amount": 500}`, "fix-1", fixtureCreditA, 200},
		{"/wallet/" + fixtureWalletA + "/debit", `{"amount": 1000}`, "fix-3", fixtureRefusedA, 409},
		{"/wallet/" + fixtureWalletB + "/credit", `{"amount": 42}`, "fix-1", fixtureCreditB, 200},
	} {
		st, hdr, body := s.do("POST", c.path, c.body, key(c.key))
		if st != c.status || hdr.Get(httpapi.ReplayedHeader) != "true" || strings.TrimSpace(string(body)) != c.want {
			t.Fatalf("replay of %s %s under %s: %d (replayed %q)\n got %s\nwant %s", c.path, c.body, c.key, st, hdr.Get(httpapi.ReplayedHeader), body, c.want)
		}
	}
	step{"POST", "/wallet/" + fixtureWalletA + "/credit", `{"amount": 501}`, key("fix-1"), 422, "idempotency_key_reused"}.run(t, s)

	// New commands continue each wallet where the old log left it.
	if r := decode[result](t, step{"POST", "/wallet/" + fixtureWalletA + "/credit", `{"amount": 1}`, nil, 200, ""}.run(t, s)); r.Balance != 301 || r.Version != 4 {
		t.Fatalf("a credit after the migration: %+v", r)
	}
	got := decode[wallet.Wallet](t, step{"GET", "/wallet/" + fixtureWalletA, "", nil, 200, ""}.run(t, s))
	if got.Status != wallet.StatusOpen || got.Balance != 301 || got.Version != 4 || got.CreatedAt.Format(time.RFC3339Nano) != "2026-12-02T15:23:59.049206969Z" {
		t.Fatalf("the migrated wallet: %+v", got)
	}
	page := decode[txPage](t, step{"GET", "/wallet/" + fixtureWalletA + "/transactions?include=rejected", "", nil, http.StatusOK, ""}.run(t, s))
	if len(page.Transactions) != 4 || page.Transactions[3].ID != "3MvJK0w8XHZkISrECiZWVa43Gvw" || page.Transactions[1].Type != wallet.DebitRejected {
		t.Fatalf("the migrated statement: %+v", page.Transactions)
	}
	// The outbox went on from its watermark: only the new event was
	// published. Events reach the stream, and the history, in the log's
	// order, so old events published again would be there before it.
	eventually(t, 10*time.Second, "the new event in the history", func() bool {
		return queryInt(t, s.historyDB(), `SELECT COUNT(*) FROM events WHERE stream_id = ? AND version = 4`, fixtureWalletA) == 1
	})
	if n := queryInt(t, s.historyDB(), `SELECT COUNT(*) FROM events`); n != 1 {
		t.Fatalf("the history holds %d events; the old log's 5 were published before the migration", n)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, "verified 2 wallets, 0 transfers, 0 items, 0 orders, 6 events (outbox at 6 of 6): 0 problems") {
		t.Fatalf("verify of the migrated log: %v\n%s", err, out)
	}
}

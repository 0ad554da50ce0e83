package eventstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/wallet"
)

// fixtureV2 is a log written by the wallet writer of schema version 2 (the
// build before the engine), through its HTTP API: wallet A credited 500
// (key fix-1), debited 200 (fix-2), refused a debit of 1000 (fix-3); wallet
// B credited 7 (no key) and 42 (fix-1); the outbox had published all five.
const (
	fixtureV2 = "testdata/v2/wallet_writer-p0.db"
	walletA   = "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm"
	walletB   = "2Qd2XfYhgT4SR29ezHMTSH1Ffqy"
)

// copyFixture copies the committed fixture where a test may change it.
func copyFixture(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(fixtureV2)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wallet_writer-p0.db")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMigrateFromSchemaVersion2 opens the version 2 fixture: the log is
// moved in place to this schema, and every event, state, idempotency
// record and the outbox watermark survive it, readable as the wallet
// domain reads them.
func TestMigrateFromSchemaVersion2(t *testing.T) {
	ctx := context.Background()
	path := copyFixture(t)
	s := open(t, path)

	evs, err := s.EventsAfter(ctx, 0, 100)
	if err != nil || len(evs) != 5 {
		t.Fatalf("events after the migration: %d, %v", len(evs), err)
	}
	want := []struct {
		stream  string
		version int64
		typ     string
		data    string
	}{
		{walletA, 1, "credited", `{"amount":500,"balance_after":500}`},
		{walletA, 2, "debited", `{"amount":200,"balance_after":300}`},
		{walletA, 3, "debit_rejected", `{"amount":1000,"balance_after":300,"reason":"insufficient_funds"}`},
		{walletB, 1, "credited", `{"amount":7,"balance_after":7}`},
		{walletB, 2, "credited", `{"amount":42,"balance_after":49}`},
	}
	for i, w := range want {
		e := evs[i]
		if e.Seq != int64(i+1) || e.Domain != wallet.Name || e.StreamID != w.stream || e.Version != w.version || e.Type != w.typ || string(e.Data) != w.data {
			t.Errorf("event %d after the migration: %+v, want %+v", i+1, e, w)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}

	states, err := s.StateLog(ctx, wallet.Name, walletA, 0, 10)
	if err != nil || len(states) != 3 {
		t.Fatalf("state log of A: %+v %v", states, err)
	}
	created := evs[0].Time.UnixNano() // A's first event
	for i, balance := range []int{500, 300, 300} {
		if want := fmt.Sprintf(`{"balance":%d,"created":%d}`, balance, created); string(states[i].State) != want || states[i].Version != int64(i+1) {
			t.Errorf("state log of A at v%d: %s", states[i].Version, states[i].State)
		}
		if _, err := (wallet.Domain{}).DecodeState(states[i].Version, states[i].State); err != nil {
			t.Error(err)
		}
	}
	heads := map[string]eventstore.Head{}
	if err := s.Heads(ctx, func(h eventstore.Head) error { heads[h.StreamID] = h; return nil }); err != nil {
		t.Fatal(err)
	}
	if h := heads[walletA]; len(heads) != 2 || h.Domain != wallet.Name || h.Version != 3 || string(h.State) != fmt.Sprintf(`{"balance":300,"created":%d}`, created) {
		t.Fatalf("heads after the migration: %+v", heads)
	}
	if h := heads[walletB]; h.Version != 2 || string(h.State) != fmt.Sprintf(`{"balance":49,"created":%d}`, evs[3].Time.UnixNano()) || h.At.IsZero() {
		t.Fatalf("head of B after the migration: %+v", h)
	}

	// The idempotency records: each key still names its event, per
	// wallet, with the fingerprint of the request that made it.
	keys := []eventstore.Key{
		{Domain: wallet.Name, StreamID: walletA, IdemKey: "k:fix-1"},
		{Domain: wallet.Name, StreamID: walletA, IdemKey: "k:fix-3"},
		{Domain: wallet.Name, StreamID: walletB, IdemKey: "k:fix-1"},
		{Domain: wallet.Name, StreamID: walletB, IdemKey: "k:fix-2"},
	}
	known, err := s.Lookup(ctx, keys)
	if err != nil || len(known) != 3 {
		t.Fatalf("idempotency records after the migration: %+v %v", known, err)
	}
	for k, request := range map[eventstore.Key]string{keys[0]: "credit:500", keys[1]: "debit:1000", keys[2]: "credit:42"} {
		if known[k].Request != request {
			t.Errorf("%+v recorded as %q, want %q", k, known[k].Request, request)
		}
	}
	if string(known[keys[1]].State) != fmt.Sprintf(`{"balance":300,"created":%d}`, created) || known[keys[1]].Event.Type != "debit_rejected" {
		t.Errorf("the refused debit's record: %+v", known[keys[1]])
	}
	if wm, err := s.OutboxWatermark(ctx); err != nil || wm != 5 {
		t.Fatalf("outbox watermark after the migration: %d %v, want 5", wm, err)
	}

	// The migrated log takes new events where the old ones end, and still
	// refuses a taken version or key.
	st, err := wallet.Domain{}.DecodeState(heads[walletB].Version, heads[walletB].State)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := credit(t, walletB, st, 1, "k:fix-9")
	batch := []eventstore.Record{next}
	if err := s.Append(ctx, batch); err != nil || batch[0].Event.Seq != 6 {
		t.Fatalf("append after the migration: seq %d, %v", batch[0].Event.Seq, err)
	}
	taken, _ := credit(t, walletB, st, 1, "k:other")
	if err := s.Append(ctx, []eventstore.Record{taken}); err == nil {
		t.Fatal("version 3 of B appended twice")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Opened again, it is a log of this schema: nothing to migrate.
	again := open(t, path)
	if n := count(t, again); n != 6 {
		t.Fatalf("%d events on reopening the migrated log, want 6", n)
	}
}

// TestMigrationIsOneTransaction: a version 2 log the migration cannot read
// stays as it was, and the open fails, naming the cause.
func TestMigrationIsOneTransaction(t *testing.T) {
	path := copyFixture(t)
	// Make the migration fail half-way: a table of the new schema's name
	// exists already, so creating it fails after the first statements ran.
	db := openRaw(t, path)
	if _, err := db.Exec(`CREATE TABLE streams (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := eventstore.Open(context.Background(), path, eventstore.Options{}); err == nil {
		t.Fatal("a migration that cannot complete opened the log")
	}
	db = openRaw(t, path)
	defer db.Close()
	var version, events int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("schema version after a failed migration: %d %v", version, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE wallet_id IS NOT NULL`).Scan(&events); err != nil || events != 5 {
		t.Fatalf("version 2 events after a failed migration: %d %v", events, err)
	}
}

// TestStreamsOfTwoDomains: the same id in two domains names two streams,
// each with its own versions, keys and head.
func TestStreamsOfTwoDomains(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	id := ksuid.New().String()
	rec := func(domain string, version int64, key string) eventstore.Record {
		return eventstore.Record{
			Event: event.Envelope{ID: ksuid.New().String(), Domain: domain, StreamID: id, Version: version, Type: "made",
				Schema: 1, Data: []byte(`{}`), Time: t0, CommandID: ksuid.New().String()},
			State: []byte(`{"n":` + string(rune('0'+version)) + `}`), IdemKey: key, Request: "make",
		}
	}
	// A command of two events: only the last carries the key.
	if err := s.Append(ctx, []eventstore.Record{rec("wallet", 1, ""), rec("wallet", 2, "k:1"), rec("item", 1, "k:1")}); err != nil {
		t.Fatal(err)
	}
	known, err := s.Lookup(ctx, []eventstore.Key{{Domain: "wallet", StreamID: id, IdemKey: "k:1"}, {Domain: "item", StreamID: id, IdemKey: "k:1"}})
	if err != nil || len(known) != 2 {
		t.Fatalf("keys of two domains: %+v %v", known, err)
	}
	if w := known[eventstore.Key{Domain: "wallet", StreamID: id, IdemKey: "k:1"}]; w.Event.Version != 2 || string(w.State) != `{"n":2}` {
		t.Fatalf("the wallet's key names %+v", w)
	}
	for _, d := range []string{"wallet", "item"} {
		h, err := s.Head(ctx, d, id)
		if err != nil || h.Domain != d || h.Version != map[string]int64{"wallet": 2, "item": 1}[d] {
			t.Fatalf("head of %s %s: %+v %v", d, id, h, err)
		}
	}
	if err := s.Append(ctx, []eventstore.Record{rec("item", 2, "k:1")}); err == nil {
		t.Fatal("the item took the same key twice")
	}
}

// openRaw opens a log file with no schema handling, as sqlite3 would.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

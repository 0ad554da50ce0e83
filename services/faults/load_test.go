package faults

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
)

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func request(base, method, path, body string, hdr map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// op is one client operation and its definite outcome.
type op struct {
	key      string
	wallet   string
	delta    int64 // +amount for a credit, -amount for a debit, -captured for a capture, minus the original's for a reversal
	applied  bool  // 200 or 201; false means refused (409) or not found (404)
	recorded bool  // an event records the outcome: everything but 404 wallet_not_found
	held     bool  // a hold placed: it ends by a capture, a void, or its expiry
}

// holdExpiry is how long the load's holds last: the ones it leaves alone
// expire during the test, across whatever faults it injects.
const holdExpiry = 2 * time.Second

// overdraft is the largest overdraft limit the load gives a wallet.
const overdraft = 100

// load runs clients that retry each operation with its Idempotency-Key until
// the answer is definite.
type load struct {
	c       *cluster
	wallets []string
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	done     []op
	failures []string

	lastOK    atomic.Int64 // unix nanos of the last definite answer
	transient atomic.Int64 // 503/504/connection errors seen
}

func startLoad(c *cluster, workers, wallets int) *load {
	l := &load{c: c, stop: make(chan struct{})}
	for range wallets {
		l.wallets = append(l.wallets, ksuid.New().String())
	}
	for w := range workers {
		l.wg.Go(func() { l.worker(uint64(w)) })
	}
	return l
}

func (l *load) worker(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		o := op{key: ksuid.New().String(), wallet: l.wallets[rng.IntN(len(l.wallets))]}
		amount := int64(1 + rng.IntN(50))
		// Mostly money; now and then the wallet's lifecycle: an overdraft
		// limit given or taken back, a freeze, an unfreeze.
		method, action, body := "POST", "credit", fmt.Sprintf(`{"amount": %d}`, amount)
		switch r := rng.IntN(100); {
		case r < 32:
			action = "debit"
		case r < 38:
			method, action, body = "PATCH", "", fmt.Sprintf(`{"overdraft_limit": %d}`, overdraft*rng.IntN(2))
		case r < 41:
			action, body = "freeze", ""
		case r < 45:
			action, body = "unfreeze", ""
		case r < 55:
			action, body = "holds", fmt.Sprintf(`{"amount": %d, "expires_in": %d}`, amount, int(holdExpiry/time.Second))
		}
		answer, err := l.resolve(&o, method, action, body)
		if err == "" && o.applied {
			switch action {
			case "credit":
				o.delta = amount
			case "debit":
				o.delta = -amount
			case "holds":
				o.held = true
			}
		}
		if !l.record(o, err) {
			return
		}
		if o.applied && (action == "credit" || action == "debit") && rng.IntN(8) == 0 {
			// Now and then the credit or debit is taken back, once.
			var r struct{ Transaction struct{ ID string } }
			if json.Unmarshal(answer, &r) != nil || r.Transaction.ID == "" {
				l.record(o, fmt.Sprintf("%s on %s answered %s", action, o.wallet, answer))
				return
			}
			rev := op{key: ksuid.New().String(), wallet: o.wallet}
			_, err := l.resolve(&rev, "POST", "transactions/"+r.Transaction.ID+"/reverse", "")
			if err == "" && rev.applied {
				rev.delta = -o.delta
			}
			if !l.record(rev, err) {
				return
			}
			continue
		}
		if !o.held {
			continue
		}
		// A hold: captured in part, voided, or left to expire. Its end may
		// come after the expiry (a fault slowed it): then it is refused,
		// 409 hold_not_active, and recorded.
		var h struct {
			HoldID string `json:"hold_id"`
		}
		if json.Unmarshal(answer, &h) != nil || h.HoldID == "" {
			l.record(o, fmt.Sprintf("hold on %s answered %s", o.wallet, answer))
			return
		}
		end := op{key: ksuid.New().String(), wallet: o.wallet}
		switch rng.IntN(3) {
		case 0:
			answer, err = l.resolve(&end, "POST", "holds/"+h.HoldID+"/capture", fmt.Sprintf(`{"amount": %d}`, 1+rng.Int64N(amount)))
			var c struct{ Captured int64 }
			if err == "" && end.applied && json.Unmarshal(answer, &c) == nil {
				end.delta = -c.Captured
			}
		case 1:
			_, err = l.resolve(&end, "POST", "holds/"+h.HoldID+"/void", "")
		default:
			continue
		}
		if !l.record(end, err) {
			return
		}
	}
}

// record keeps a resolved operation, or the failure that ended its worker;
// it reports whether the worker goes on.
func (l *load) record(o op, failure string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure != "" {
		l.failures = append(l.failures, failure)
		return false
	}
	l.done = append(l.done, o)
	return true
}

// resolve sends one operation until its outcome is definite, and returns
// the answer's body. Once sent, an operation is never abandoned: its
// outcome matters whether or not the test is stopping.
func (l *load) resolve(o *op, method, action, body string) ([]byte, string) {
	hdr := map[string]string{"Idempotency-Key": o.key}
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(90 * time.Second)
	path := "/wallet/" + o.wallet
	if action != "" {
		path += "/" + action
	}
	for {
		st, _, b, err := request(l.c.base(), method, path, body, hdr)
		switch {
		case err == nil && (st == 200 || st == 201):
			o.applied, o.recorded = true, true
			l.lastOK.Store(time.Now().UnixNano())
			return b, ""
		case err == nil && st == 409 && (strings.Contains(string(b), `"insufficient_funds"`) ||
			strings.Contains(string(b), `"wallet_frozen"`) || strings.Contains(string(b), `"wallet_not_frozen"`) ||
			strings.Contains(string(b), `"hold_not_active"`)):
			o.recorded = true
			l.lastOK.Store(time.Now().UnixNano())
			return b, ""
		case err == nil && st == 404 && strings.Contains(string(b), `"wallet_not_found"`) && action != "credit" && action != "debit" && action != "holds":
			l.lastOK.Store(time.Now().UnixNano()) // the wallet's lifecycle before its first event: nothing recorded
			return b, ""
		case err != nil || st == 503 || st == 504:
			l.transient.Add(1)
		default:
			return b, fmt.Sprintf("%s %s: %d %s", action, o.wallet, st, b)
		}
		if time.Now().After(deadline) {
			return b, fmt.Sprintf("%s %s (key %s) unresolved after 90s: %v %d %s", action, o.wallet, o.key, err, st, b)
		}
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// resolved returns how many operations have a definite outcome so far.
func (l *load) resolved() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// finish stops the clients once every operation in flight is resolved.
func (l *load) finish(t *testing.T) []op {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, f := range l.failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	return l.done
}

// waitProgress waits until some operation resolves after since, and returns
// how long that took.
func (l *load) waitProgress(t *testing.T, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	eventually(t, within, "an operation to succeed", func() bool { return l.lastOK.Load() > since.UnixNano() })
	return time.Unix(0, l.lastOK.Load()).Sub(since)
}

// checkInvariants is the promise: every acknowledged operation is in SQLite
// exactly once, each wallet's balance equals its acknowledged sum, every
// hold has ended (captured, voided or expired by the writer, once), Redis
// equals SQLite, and the history holds every event exactly once.
func checkInvariants(t *testing.T, c *cluster, ops []op) {
	t.Helper()
	if len(ops) == 0 {
		t.Fatal("no operation completed")
	}
	// The holds left alone expire by themselves: wait for the last of them.
	holds := 0
	for _, o := range ops {
		if o.held {
			holds++
		}
	}
	if holds > 0 {
		stopped := time.Now()
		logs := c.logs()
		eventually(t, holdExpiry+15*time.Second, "every hold to end", func() bool {
			for _, db := range logs {
				if heldSomewhere(t, db) {
					return false
				}
			}
			return true
		})
		t.Logf("every hold ended within %s of the end of the load", time.Since(stopped).Round(time.Millisecond))
	}
	logs := c.logs()
	want := map[string]int64{}
	for _, o := range ops {
		want[o.wallet] += o.delta
	}
	logged := map[string]int{}    // wallet + key → events
	fileOf := map[string]string{} // wallet → the one log that holds it
	for name, db := range logs {
		rows, err := db.Query(`SELECT stream_id, idem_key FROM events WHERE domain = 'wallet' AND idem_key IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var w, k string
			if err := rows.Scan(&w, &k); err != nil {
				t.Fatal(err)
			}
			logged[w+" "+k]++
			if f, ok := fileOf[w]; ok && f != name {
				t.Fatalf("wallet %s has events in both %s and %s: two writers handled it", w, f, name)
			}
			fileOf[w] = name
		}
		rows.Close()
	}
	if n := c.partitionCount(); n > 1 {
		for w, f := range fileOf {
			if want := fmt.Sprintf("wallet_writer-p%d.db", bus.PartitionOf(w, n)); f != want {
				t.Fatalf("wallet %s is in %s, but its partition's log is %s", w, f, want)
			}
		}
	}
	var applied, recorded int
	for _, o := range ops {
		if o.applied {
			applied++
		}
		want := 0
		if o.recorded {
			want, recorded = 1, recorded+1
		}
		if n := logged[o.wallet+" k:"+o.key]; n != want {
			t.Fatalf("operation %s on %s is in the log %d times, want %d", o.key, o.wallet, n, want)
		}
	}
	// Every event in the log belongs to exactly one resolved operation —
	// nothing was applied that nobody asked for, nothing twice — but the
	// expiries the writers decided on their own, at most one per hold.
	var events, expired, placed int64
	for _, db := range logs {
		events += count(t, db, `SELECT COUNT(*) FROM events WHERE type != 'hold_expired'`)
		expired += count(t, db, `SELECT COUNT(*) FROM events WHERE type = 'hold_expired'`)
		placed += count(t, db, `SELECT COUNT(*) FROM events WHERE type = 'held'`)
		if n := count(t, db, `SELECT COUNT(*) FROM events WHERE type = 'hold_expired' AND idem_key LIKE 'k:%'`); n != 0 {
			t.Fatalf("%d expiries carry a client's key", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM (SELECT stream_id, json_extract(data, '$.hold_id') AS h FROM events
			WHERE type IN ('hold_captured', 'hold_voided', 'hold_expired') GROUP BY stream_id, h HAVING COUNT(*) > 1)`); n != 0 {
			t.Fatalf("%d holds ended more than once", n)
		}
	}
	if events != int64(recorded) {
		t.Fatalf("the logs hold %d events for %d recorded operations", events, recorded)
	}
	if placed != int64(holds) || expired > placed {
		t.Fatalf("%d holds placed in the logs, %d acknowledged; %d expired", placed, holds, expired)
	}
	for w, sum := range want {
		var b int64
		if f, ok := fileOf[w]; ok {
			b = count(t, logs[f], `SELECT COALESCE((SELECT json_extract(state, '$.balance') FROM events WHERE domain = 'wallet' AND stream_id = ? ORDER BY version DESC LIMIT 1), 0)`, w)
		}
		if b != sum {
			t.Fatalf("wallet %s: SQLite balance %d, acknowledged sum %d", w, b, sum)
		}
		if b < -overdraft {
			t.Fatalf("wallet %s: balance %d, below the largest overdraft limit the load gives, %d", w, b, overdraft)
		}
	}
	var verified string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.verify()
		if err == nil {
			break
		}
		verified = out
		if time.Now().After(deadline) {
			t.Fatalf("Redis still differs from SQLite 30s after the load:\n%s", verified)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for w, sum := range want {
		st, _, b, err := request(c.base(), "GET", "/wallet/"+w+"/balance", "", nil)
		var v struct{ Balance int64 }
		if err != nil || st != 200 || json.Unmarshal(b, &v) != nil || v.Balance != sum {
			t.Fatalf("wallet %s: API balance %d (%d %s %v), acknowledged sum %d", w, v.Balance, st, b, err, sum)
		}
	}
	checkHistory(t, c, logs, int64(recorded)+expired)
	t.Logf("invariants hold: %d operations (%d applied, %d refused; %d holds, %d of them expired by the writer) over %d wallets in %d log(s)",
		len(ops), applied, len(ops)-applied, holds, expired, len(want), len(logs))
}

// checkHistory waits, at most 30 s, for the history to hold as many events
// as the logs, events, and then finds each event of the logs in it: every
// event once.
func checkHistory(t *testing.T, c *cluster, logs map[string]*sql.DB, events int64) {
	t.Helper()
	hdb := c.db("history.db")
	eventually(t, 30*time.Second, fmt.Sprintf("the history to hold the logs' %d events", events), func() bool {
		return count(t, hdb, `SELECT COUNT(*) FROM events`) == events
	})
	ids := map[string]bool{}
	for _, id := range column(t, hdb, `SELECT event_id FROM events`) {
		ids[id] = true
	}
	for _, db := range logs {
		for _, id := range column(t, db, `SELECT id FROM events`) {
			if !ids[id] {
				t.Fatalf("event %s is in a log but not in the history", id)
			}
		}
	}
}

// heldSomewhere reports whether a wallet of the log has an active hold: a
// hold placed and not ended.
func heldSomewhere(t *testing.T, db *sql.DB) bool {
	t.Helper()
	return count(t, db, `SELECT COUNT(*) FROM events AS h WHERE h.type = 'held' AND NOT EXISTS (
		SELECT 1 FROM events AS e WHERE e.domain = h.domain AND e.stream_id = h.stream_id AND e.version > h.version
			AND e.type IN ('hold_captured', 'hold_voided', 'hold_expired') AND json_extract(e.data, '$.hold_id') = json_extract(h.data, '$.hold_id'))`) > 0
}

// column returns the one text column q selects, every row of it.
func column(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// logs opens every partition's event log of the cluster, by file name.
func (c *cluster) logs() map[string]*sql.DB {
	c.t.Helper()
	files, err := filepath.Glob(filepath.Join(c.dir, "wallet_writer-p*.db"))
	if err != nil || len(files) == 0 {
		c.t.Fatalf("no event log in %s (%v)", c.dir, err)
	}
	out := map[string]*sql.DB{}
	for _, f := range files {
		out[filepath.Base(f)] = c.db(filepath.Base(f))
	}
	return out
}

// partitionCount is the cluster's PARTITION_COUNT.
func (c *cluster) partitionCount() int {
	n, err := strconv.Atoi(c.extra["PARTITION_COUNT"])
	if err != nil {
		return 1
	}
	return n
}

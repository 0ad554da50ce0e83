// Package eventstore is the writer's durable log in SQLite: every event, the
// state of its stream after each event, the idempotency records, and the
// outbox watermark. It knows no domain: a stream is a (domain, stream id)
// pair, and events and states are the domains' own encodings. One batch of
// decided commands is written in one transaction, so a batch is either
// wholly in the log or not at all.
//
// The store has one write connection (SQLite allows one writer; a pool would
// only queue on the file lock) and a small pool of read connections, all in
// WAL mode so reads never wait for the writer.
package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"coffer/pkg/event"
)

// ErrVersionConflict is returned when a batch holds an event whose (stream,
// version) is already in the log: somebody else wrote that stream. Nothing of
// the batch is stored.
var ErrVersionConflict = errors.New("version conflict")

// Sync is SQLite's synchronous setting for the write connection.
type Sync string

// The durability modes. SyncFull fsyncs the WAL at every commit, so an
// acknowledged write survives power loss; SyncNormal may lose the last
// commits on power loss (never on a process crash).
const (
	SyncFull   Sync = "FULL"
	SyncNormal Sync = "NORMAL"
)

// Options tune Open. The zero value is the durable default.
type Options struct {
	Sync Sync // default SyncFull
	// BusyTimeout is how long a statement waits for a lock another process
	// holds on the file before it fails. Default 1s: well inside the API's
	// write deadline, so a locked file is answered with a clear 503.
	BusyTimeout time.Duration
}

// Store is an open event log. Its methods are safe for concurrent use.
type Store struct {
	w    *sql.DB // exactly one connection: the single writer
	r    *sql.DB // readers
	ckpt *sql.DB // one connection for the bulk of each checkpoint

	mu       sync.Mutex   // one Append at a time (there is one writer anyway)
	lastSeq  atomic.Int64 // seq of the newest event written (set under mu)
	headsSeq int64        // the streams table is up to date with the events up to this seq (under mu)

	inserts *stmtCache // multi-row event inserts, by row count
	lookups *stmtCache // idempotency lookups, by key count (a power of two)
}

// schemaVersion is PRAGMA user_version of a log this build writes.
const schemaVersion = 3

// The schema. Each event row also carries its stream's state after it (the
// domain's encoding): that column is the state log, written with the event
// at no extra cost. The idempotency record of a command is its last event's
// idem_key, unique per stream, with request, the command's fingerprint, to
// tell a retry from another request under the same key; the stored outcome
// is rebuilt from the event and the state. streams holds each stream's
// latest state as of the event meta.heads_seq (HeadsEvery), so that a start
// reads one row per stream.
const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq        INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL,
	domain     TEXT    NOT NULL,
	stream_id  TEXT    NOT NULL,
	version    INTEGER NOT NULL CHECK (version > 0),
	type       TEXT    NOT NULL,
	schema     INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	state      BLOB    NOT NULL,
	command_id TEXT    NOT NULL,
	request_id TEXT    NOT NULL DEFAULT '',
	idem_key   TEXT,
	request    TEXT,
	at         INTEGER NOT NULL,
	UNIQUE (domain, stream_id, version),
	UNIQUE (idem_key, domain, stream_id) -- server-made keys are KSUIDs: in time order, appended
);
CREATE VIEW IF NOT EXISTS states (domain, stream_id, version, state, at) AS
	SELECT domain, stream_id, version, state, at FROM events;
CREATE TABLE IF NOT EXISTS streams (
	domain    TEXT    NOT NULL,
	stream_id TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	state     BLOB    NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (domain, stream_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	published_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO outbox (id, published_seq) VALUES (1, 0);
PRAGMA user_version = 3;
`

// migrateV2 moves a log of schema version 2 to this one in place. Version 2
// was the log of the wallet writer alone: every row a wallet's event
// (credited, debited or debit_rejected, with data {"amount", ...}), its
// state the balance, so each row becomes a row of domain "wallet" whose
// state is the wallet domain's {"balance":N,"created":T} (T: the time of the
// wallet's first event, in Unix nanoseconds) and whose request, for rows
// under a key, is what the wallet domain fingerprints a credit or debit as
// ("credit:500").
// Everything else (seq, ids, versions, data, keys, times, the outbox
// watermark and meta) is kept as it is. It runs in the caller's
// transaction: a failure leaves the version 2 log untouched.
const migrateV2 = `
DROP VIEW states;
ALTER TABLE events RENAME TO events_v2;
` + schema + `
INSERT INTO events (seq, id, domain, stream_id, version, type, schema, data, state, command_id, request_id, idem_key, request, at)
	SELECT seq, id, 'wallet', wallet_id, version, type, schema, data,
		'{"balance":' || balance || ',"created":' || COALESCE((SELECT f.at FROM events_v2 AS f WHERE f.wallet_id = e.wallet_id AND f.version = 1), at) || '}',
		command_id, request_id, idem_key,
		CASE type WHEN 'credited' THEN 'credit:' ELSE 'debit:' END || json_extract(data, '$.amount'), at
	FROM events_v2 AS e ORDER BY seq;
INSERT INTO streams (domain, stream_id, version, state, at)
	SELECT 'wallet', wallet_id, version,
		'{"balance":' || balance || ',"created":' || COALESCE((SELECT f.at FROM events_v2 AS f WHERE f.wallet_id = w.wallet_id AND f.version = 1), at) || '}',
		at
	FROM wallets AS w;
DROP TABLE wallets;
DROP TABLE events_v2;
`

// migrate brings a log of an older schema version to this one, in one
// transaction.
func migrate(ctx context.Context, db *sql.DB, from int) error {
	if from != 2 {
		return fmt.Errorf("schema version %d, this build writes %d and migrates only version 2 (a log from a development build: move it away)", from, schemaVersion)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, migrateV2); err != nil {
		return fmt.Errorf("migrate from schema version 2: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate from schema version 2: %w", err)
	}
	return nil
}

// Open opens (creating if needed) the log at path.
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	if opt.Sync == "" {
		opt.Sync = SyncFull
	}
	if opt.Sync != SyncFull && opt.Sync != SyncNormal {
		return nil, fmt.Errorf("open %s: synchronous %q is neither FULL nor NORMAL", path, opt.Sync)
	}
	if opt.BusyTimeout == 0 {
		opt.BusyTimeout = time.Second
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(opt.BusyTimeout.Milliseconds()))
	q.Set("_txlock", "immediate")
	q.Set("_synchronous", string(opt.Sync))
	// SQLite's default page cache (2 MB); the OS caches the file anyway. A
	// 64 MiB cache cost more than it saved: the end of every write
	// transaction walked its whole hash table (pcache1TruncateUnsafe, 15%
	// of the writer's CPU at 5,000 credits/s), and it was two thirds of the
	// writer's memory (174 MB -> 56 MB with 110,000 wallets).
	q.Add("_pragma", "cache_size(-2000)")
	// The writer checkpoints between batches (Checkpoint), not inside a
	// commit; after a burst the WAL file shrinks back to 64 MiB.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	// Multi-row statements inside a transaction keep a statement journal
	// (a copy of each page before they change it). By default SQLite spills
	// it past 64 KiB to a temporary file it creates, writes page by page
	// and deletes again, several times a second under load: in memory it
	// costs a copy instead of those system calls.
	q.Add("_pragma", "temp_store(MEMORY)")
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	var have int
	if err := w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if have != 0 && have != schemaVersion {
		if err := migrate(ctx, w, have); err != nil {
			w.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: create schema: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", fmt.Sprint(opt.BusyTimeout.Milliseconds()))
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4) // opening a connection parses the schema: keep them
	cq := url.Values{}
	cq.Set("_busy_timeout", fmt.Sprint(opt.BusyTimeout.Milliseconds()))
	cq.Set("_synchronous", string(opt.Sync))
	ckpt, err := sql.Open("sqlite", "file:"+path+"?"+cq.Encode())
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	st := &Store{w: w, r: r, ckpt: ckpt,
		inserts: newStmtCache(w, insertSQL),
		// On the write connection: its page cache survives its own
		// commits, where a reader's is dropped whenever the log changed
		// since its last read, which under load is every batch.
		lookups: newStmtCache(w, lookupSQL),
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	st.lastSeq.Store(last)
	// A log without the mark was written by a build that brought the
	// streams table up to date with every commit.
	var heads string
	if err := w.QueryRowContext(ctx, `INSERT INTO meta (key, value) VALUES ('heads_seq', ?)
		ON CONFLICT (key) DO UPDATE SET value = value RETURNING value`, strconv.FormatInt(last, 10)).Scan(&heads); err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if st.headsSeq, err = strconv.ParseInt(heads, 10, 64); err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: heads_seq %q: %w", path, heads, err)
	}
	return st, nil
}

// OpenReadOnly opens an existing log for reading only, as the recovery
// tools do while a writer may be running: it never writes, never creates.
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", "5000")
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	return &Store{r: r}, nil
}

// Close closes the log.
func (s *Store) Close() error {
	if s.w == nil {
		return s.r.Close()
	}
	for _, c := range []*stmtCache{s.inserts, s.lookups} {
		c.close()
	}
	err := s.FlushHeads(context.Background())
	if _, cerr := s.Checkpoint(context.Background()); err != nil || cerr != nil {
		return errors.Join(err, cerr, s.ckpt.Close(), s.r.Close(), s.w.Close())
	}
	return errors.Join(s.ckpt.Close(), s.r.Close(), s.w.Close())
}

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

// Record is one event of a decided command on its way into the log.
type Record struct {
	// Event is the event. Seq is set by Append.
	Event event.Envelope
	// State is the domain's encoding of the stream once Event is applied.
	State []byte
	// IdemKey identifies the command within its stream (the client's key,
	// or the command id), on the command's last event and empty on the
	// others: a second event under it is a conflict.
	IdemKey string
	// Request is the command's fingerprint, stored beside IdemKey.
	Request string
}

// rowsPerInsert bounds one multi-row INSERT (14 variables a row).
const rowsPerInsert = 256

// Append writes the records in one transaction, numbering their events
// after the newest one. It returns ErrVersionConflict if a (stream, version)
// or (stream, idempotency key) is taken, and then stores nothing.
func (s *Store) Append(ctx context.Context, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	// Prepare first: the transaction will hold the only write connection.
	for start := 0; start < len(recs); start += rowsPerInsert {
		if _, err := s.inserts.get(ctx, min(len(recs)-start, rowsPerInsert)); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	seq := s.lastSeq.Load()
	for start := 0; start < len(recs); start += rowsPerInsert {
		chunk := recs[start:min(len(recs), start+rowsPerInsert)]
		args := make([]any, 0, 14*len(chunk))
		for i := range chunk {
			seq++
			r := &chunk[i]
			e := &r.Event
			e.Seq = seq
			var key, request any // NULL on a command's earlier events
			if r.IdemKey != "" {
				key, request = r.IdemKey, r.Request
			}
			args = append(args, seq, e.ID, e.Domain, e.StreamID, e.Version, e.Type, e.Schema, []byte(e.Data),
				r.State, e.CommandID, e.RequestID, key, request, e.Time.UnixNano())
		}
		stmt, err := s.inserts.get(ctx, len(chunk))
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("append %d events: %w", len(chunk), conflict(err))
		}
	}
	flush := seq-s.headsSeq >= HeadsEvery
	if flush {
		if err := flushHeads(ctx, tx, s.headsSeq, seq); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append: commit: %w", err)
	}
	s.lastSeq.Store(seq)
	if flush {
		s.headsSeq = seq
	}
	return nil
}

// HeadsEvery is how many events the streams table may lag behind the log:
// the Append that takes it further brings every stream's head up to date
// in its own transaction. Upserting each batch's heads as it commits cost
// a row in a random page of streams per stream and batch — a page written
// to the WAL each time, and the commit's largest cost after the events
// themselves when a batch spreads over many streams; brought up to date
// thousands of events at a time, each page is written once for all of its
// streams. Heads and Head read the log's newest events beside the table,
// so they are always current.
const HeadsEvery = 4096

// FlushHeads brings the streams table up to date with the log now, as
// Close does, so that the next Open reads it alone.
func (s *Store) FlushHeads(ctx context.Context) error {
	if s.w == nil {
		return errors.New("flush heads: the log is open read-only")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.lastSeq.Load()
	if seq == s.headsSeq {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("flush heads: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := flushHeads(ctx, tx, s.headsSeq, seq); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("flush heads: %w", err)
	}
	s.headsSeq = seq
	return nil
}

// flushHeads moves the heads of the streams with events after seq from
// and up to seq to into the streams table (never back), and records that
// it is complete up to to.
func flushHeads(ctx context.Context, tx *sql.Tx, from, to int64) error {
	// The bare columns of a MAX() aggregate come from the row holding the
	// maximum; an upsert from a SELECT needs its WHERE to parse.
	if _, err := tx.ExecContext(ctx, `INSERT INTO streams (domain, stream_id, version, state, at)
		SELECT domain, stream_id, MAX(version), state, at FROM events WHERE seq > ? AND seq <= ? GROUP BY domain, stream_id
		ON CONFLICT (domain, stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, at = excluded.at
		WHERE excluded.version > streams.version`, from, to); err != nil {
		return fmt.Errorf("stream heads: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'heads_seq'`, strconv.FormatInt(to, 10)); err != nil {
		return fmt.Errorf("stream heads: %w", err)
	}
	return nil
}

// insertSQL inserts n events. OR ROLLBACK: a taken key ends the whole
// transaction (Append stores all or nothing anyway), so SQLite keeps no
// statement journal to undo half a statement — 5% of the writer's CPU.
func insertSQL(n int) string {
	return `INSERT OR ROLLBACK INTO events
		(seq, id, domain, stream_id, version, type, schema, data, state, command_id, request_id, idem_key, request, at)
		VALUES ` + placeholders(n, 14)
}

// placeholders returns "(?, ?), (?, ?)" for rows of cols.
func placeholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

func conflict(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	}
	return err
}

// Head is a stream's latest state.
type Head struct {
	Domain   string
	StreamID string
	Version  int64
	State    []byte // the domain's encoding; nil for a stream with no events
	At       time.Time
}

// Heads calls fn with the latest state of every stream, in (domain, stream
// id) order. It reads one row per stream: the streams table, and the newest
// event of each stream that changed since the table was last brought up to
// date (at most HeadsEvery events, unless a writer stopped without Close).
func (s *Store) Heads(ctx context.Context, fn func(Head) error) error {
	// One read transaction: the table and the events it lags behind, as
	// of one moment.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("heads: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	var mark string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'heads_seq'`).Scan(&mark)
	var recent []Head
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Never opened by this build: the table is up to date.
	case err != nil:
		return fmt.Errorf("heads: %w", err)
	default:
		from, err := strconv.ParseInt(mark, 10, 64)
		if err != nil {
			return fmt.Errorf("heads: heads_seq %q: %w", mark, err)
		}
		if recent, err = scanHeads(ctx, tx, nil, `SELECT domain, stream_id, MAX(version), state, at FROM events WHERE seq > ?
			GROUP BY domain, stream_id ORDER BY domain, stream_id`, from); err != nil {
			return err
		}
	}
	// Merge the two, both in (domain, stream id) order.
	next := func(h Head) error {
		for len(recent) > 0 && (recent[0].Domain < h.Domain || recent[0].Domain == h.Domain && recent[0].StreamID < h.StreamID) {
			if err := fn(recent[0]); err != nil {
				return err
			}
			recent = recent[1:]
		}
		if len(recent) > 0 && recent[0].Domain == h.Domain && recent[0].StreamID == h.StreamID {
			h, recent = recent[0], recent[1:]
		}
		return fn(h)
	}
	if _, err := scanHeads(ctx, tx, next, `SELECT domain, stream_id, version, state, at FROM streams ORDER BY domain, stream_id`); err != nil {
		return err
	}
	for _, h := range recent {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// scanHeads runs a query of (domain, stream_id, version, state, at) and
// gives each row to fn, or returns them all when fn is nil.
func scanHeads(ctx context.Context, tx *sql.Tx, fn func(Head) error, query string, args ...any) ([]Head, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	defer rows.Close()
	var out []Head
	for rows.Next() {
		var h Head
		var at int64
		if err := rows.Scan(&h.Domain, &h.StreamID, &h.Version, &h.State, &at); err != nil {
			return nil, fmt.Errorf("heads: %w", err)
		}
		h.At = time.Unix(0, at).UTC()
		if fn == nil {
			out = append(out, h)
		} else if err := fn(h); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// Head returns the latest state of one stream, from its newest event; a
// stream with no events has version 0 and no state.
func (s *Store) Head(ctx context.Context, domain, streamID string) (Head, error) {
	h := Head{Domain: domain, StreamID: streamID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT version, state, at FROM events WHERE domain = ? AND stream_id = ? ORDER BY version DESC LIMIT 1`,
		domain, streamID).Scan(&h.Version, &h.State, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("head of %s %s: %w", domain, streamID, err)
	}
	h.At = time.Unix(0, at).UTC()
	return h, nil
}

// Key names a command within its stream.
type Key struct {
	Domain   string
	StreamID string
	IdemKey  string
}

// Recorded is an event as the log holds it: with its stream's state right
// after it and, on a command's last event, the command's fingerprint.
type Recorded struct {
	Event   event.Envelope
	State   []byte
	Request string
}

// Lookup returns the last event recorded under each of keys that is taken,
// in one query per 256 keys.
func (s *Store) Lookup(ctx context.Context, keys []Key) (map[Key]Recorded, error) {
	out := make(map[Key]Recorded)
	for start := 0; start < len(keys); start += maxLookup {
		part := keys[start:min(len(keys), start+maxLookup)]
		// A few statement shapes serve every batch: the keys are padded
		// to a power of two with the last one again (a key found twice is
		// the same event).
		n := 1
		for n < len(part) {
			n *= 2
		}
		args := make([]any, 0, 3*n)
		for i := range n {
			k := part[min(i, len(part)-1)]
			args = append(args, k.IdemKey, k.Domain, k.StreamID)
		}
		stmt, err := s.lookups.get(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		for rows.Next() {
			var rec Recorded
			var key string
			if err := scanEvent(rows, &rec.Event, &key, &rec.Request, &rec.State); err != nil {
				rows.Close()
				return nil, fmt.Errorf("idempotency lookup: %w", err)
			}
			out[Key{Domain: rec.Event.Domain, StreamID: rec.Event.StreamID, IdemKey: key}] = rec
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
	}
	return out, nil
}

// maxLookup bounds the keys of one idempotency lookup query.
const maxLookup = 256

// lookupSQL finds the events recorded under n (key, domain, stream) triples.
func lookupSQL(n int) string {
	return `SELECT e.idem_key, e.request, e.state, ` + prefixed("e.", eventColumns) + `
		FROM (VALUES ` + placeholders(n, 3) + `) AS k
		JOIN events AS e ON e.idem_key = k.column1 AND e.domain = k.column2 AND e.stream_id = k.column3`
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

const eventColumns = `seq, id, domain, stream_id, version, type, schema, data, command_id, request_id, at`

// scanEvent reads eventColumns, after any extra leading columns, into e.
func scanEvent(rows *sql.Rows, e *event.Envelope, extra ...any) error {
	var at int64
	var data []byte
	dest := append(extra, &e.Seq, &e.ID, &e.Domain, &e.StreamID, &e.Version, &e.Type, &e.Schema, &data, &e.CommandID, &e.RequestID, &at)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	e.Data = data
	e.Time = time.Unix(0, at).UTC()
	return nil
}

func scanEvents(rows *sql.Rows) ([]event.Envelope, error) {
	defer rows.Close()
	var out []event.Envelope
	for rows.Next() {
		var e event.Envelope
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EventsAfter returns up to limit events with seq > after, in seq order.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]event.Envelope, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	return evs, nil
}

// StreamEvents returns up to limit events of one stream with version >
// after, in version order, each with the state after it.
func (s *Store) StreamEvents(ctx context.Context, domain, streamID string, after int64, limit int) ([]Recorded, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, `+eventColumns+` FROM events
		WHERE domain = ? AND stream_id = ? AND version > ? ORDER BY version LIMIT ?`, domain, streamID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s %s: %w", domain, streamID, err)
	}
	defer rows.Close()
	var out []Recorded
	for rows.Next() {
		var r Recorded
		if err := scanEvent(rows, &r.Event, &r.State); err != nil {
			return nil, fmt.Errorf("events of %s %s: %w", domain, streamID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %s %s: %w", domain, streamID, err)
	}
	return out, nil
}

// StreamEventByID returns the event of one stream with id, with the state
// after it; found is false if the stream has none. It reads the stream's
// events (ids are not indexed: only a command that refers to an earlier
// event, a reversal, asks).
func (s *Store) StreamEventByID(ctx context.Context, domain, streamID, id string) (Recorded, bool, error) {
	var r Recorded
	rows, err := s.r.QueryContext(ctx, `SELECT state, `+eventColumns+` FROM events WHERE domain = ? AND stream_id = ? AND id = ?`, domain, streamID, id)
	if err != nil {
		return r, false, fmt.Errorf("event %s of %s %s: %w", id, domain, streamID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return r, false, rows.Err()
	}
	if err := scanEvent(rows, &r.Event, &r.State); err != nil {
		return r, false, fmt.Errorf("event %s of %s %s: %w", id, domain, streamID, err)
	}
	return r, true, nil
}

// OutboxWatermark returns the seq of the last event known to be in JetStream.
func (s *Store) OutboxWatermark(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT published_seq FROM outbox WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("outbox watermark: %w", err)
	}
	return seq, nil
}

// SetOutboxWatermark records that every event up to seq is in JetStream. The
// watermark never moves backwards.
func (s *Store) SetOutboxWatermark(ctx context.Context, seq int64) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET published_seq = ? WHERE id = 1 AND published_seq < ?`, seq, seq); err != nil {
		return fmt.Errorf("set outbox watermark to %d: %w", seq, err)
	}
	return nil
}

// Checkpoint copies what the WAL holds into the database file in two
// steps. The bulk is copied on a connection of its own, beside the writer,
// so commits do not wait for it. That alone never lets the WAL start over
// under continuous writes (a new commit always lands while it copies, so a
// write never begins with the WAL fully copied, which is when SQLite
// restarts it): the WAL only grows — 169 MB in a test where it should stay
// at a few. So a second pass on the write connection, between two Appends,
// copies the few frames committed meanwhile, and the next Append starts the
// WAL over. copied is how many frames of the WAL are in the database file.
func (s *Store) Checkpoint(ctx context.Context) (copied int, err error) {
	if s.w == nil {
		return 0, errors.New("checkpoint: the log is open read-only")
	}
	var busy, frames int
	if err := s.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	return copied, err
}

// ErrOtherPartition is returned by ClaimPartition for a log written as
// another partition, or under another partition count.
var ErrOtherPartition = errors.New("the log belongs to another partition")

// ClaimPartition records that this log holds partition index of count, the
// first time, and refuses any other afterwards: with another count the
// server would route some of its streams elsewhere, where they would start
// again from nothing, and their money with them.
func (s *Store) ClaimPartition(ctx context.Context, index, count int) error {
	want := fmt.Sprintf("%d/%d", index, count)
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('partition', ?)`, want); err != nil {
		return fmt.Errorf("claim partition: %w", err)
	}
	var have string
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'partition'`).Scan(&have); err != nil {
		return fmt.Errorf("claim partition: %w", err)
	}
	if have != want {
		return fmt.Errorf("%w: it was written as partition %s (index/count), this writer is configured as %s; "+
			"partitions cannot be renumbered or the count changed on a live log", ErrOtherPartition, have, want)
	}
	return nil
}

// Identity returns the id of the writer this log belongs to, making one with
// newID the first time. A writer that restarts on the same file is the same
// writer, so it may take back its own partition lease at once.
func (s *Store) Identity(ctx context.Context, newID func() string) (string, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('writer_id', ?)`, newID()); err != nil {
		return "", fmt.Errorf("writer identity: %w", err)
	}
	var id string
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'writer_id'`).Scan(&id); err != nil {
		return "", fmt.Errorf("writer identity: %w", err)
	}
	return id, nil
}

// LoggedState is one row of the state log: a stream's state once its
// event of Version was applied.
type LoggedState struct {
	Version int64
	State   []byte
}

// StateLog returns the logged states of one stream with version > after,
// in version order, up to limit.
func (s *Store) StateLog(ctx context.Context, domain, streamID string, after int64, limit int) ([]LoggedState, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT version, state FROM states WHERE domain = ? AND stream_id = ? AND version > ? ORDER BY version LIMIT ?`,
		domain, streamID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("state log of %s %s: %w", domain, streamID, err)
	}
	defer rows.Close()
	var out []LoggedState
	for rows.Next() {
		var st LoggedState
		if err := rows.Scan(&st.Version, &st.State); err != nil {
			return nil, fmt.Errorf("state log of %s %s: %w", domain, streamID, err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// Committed returns the seq of the newest committed event, 0 for an empty
// log, without touching the file (the writer's log only).
func (s *Store) Committed() int64 { return s.lastSeq.Load() }

// LastSeq returns the seq of the newest event, 0 for an empty log.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last seq: %w", err)
	}
	return seq.Int64, nil
}

// EachEvent calls fn with every event of domain in logs, each log in order
// (verify's cross-partition checks read them so).
func EachEvent(ctx context.Context, logs []*Store, domain string, fn func(event.Envelope) error) error {
	for _, l := range logs {
		for after := int64(0); ; {
			page, err := l.EventsAfter(ctx, after, 5000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, env := range page {
				if env.Domain == domain {
					if err := fn(env); err != nil {
						return err
					}
				}
			}
			after = page[len(page)-1].Seq
		}
	}
	return nil
}

// Package eventstore is the writer's durable log in SQLite: every event, the
// wallet state after each event, the idempotency records, and the outbox
// watermark. One batch of decided commands is written in one transaction, so
// a batch is either wholly in the log or not at all.
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
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"coffer/pkg/event"
	"coffer/pkg/wallet"
)

// ErrVersionConflict is returned when a batch holds an event whose (wallet,
// version) is already in the log: somebody else wrote that wallet. Nothing of
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
	w *sql.DB // exactly one connection: the single writer
	r *sql.DB // readers
}

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT    NOT NULL UNIQUE,
	wallet_id  TEXT    NOT NULL,
	version    INTEGER NOT NULL CHECK (version > 0),
	type       TEXT    NOT NULL,
	schema     INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	command_id TEXT    NOT NULL,
	request_id TEXT    NOT NULL DEFAULT '',
	idem_key   TEXT,
	at         INTEGER NOT NULL,
	UNIQUE (wallet_id, version)
);
CREATE TABLE IF NOT EXISTS states (
	wallet_id TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	balance   INTEGER NOT NULL CHECK (balance >= 0),
	at        INTEGER NOT NULL,
	PRIMARY KEY (wallet_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wallets (
	wallet_id TEXT    PRIMARY KEY,
	version   INTEGER NOT NULL,
	balance   INTEGER NOT NULL CHECK (balance >= 0),
	at        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
	wallet_id   TEXT    NOT NULL,
	key         TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	reply       BLOB    NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (wallet_id, key)
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
PRAGMA user_version = 1;
`

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
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
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
	return &Store{w: w, r: r}, nil
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
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

// Record is one decided command on its way into the log.
type Record struct {
	// Event is the event the command produced. Seq is set by Append.
	Event event.Envelope
	// State is the wallet once Event is applied.
	State wallet.State
	// IdemKey, when not empty, stores Reply under (wallet, IdemKey) so the
	// same command replays it; Fingerprint tells the same command from another
	// one reusing the key.
	IdemKey     string
	Fingerprint string
	Reply       []byte
}

// Append writes the records in one transaction and sets each event's Seq. It
// returns ErrVersionConflict if any (wallet, version) is taken, and then
// stores nothing.
func (s *Store) Append(ctx context.Context, recs []Record) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	insEvent, err := tx.PrepareContext(ctx, `INSERT INTO events
		(id, wallet_id, version, type, schema, data, command_id, request_id, idem_key, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	insState, err := tx.PrepareContext(ctx, `INSERT INTO states (wallet_id, version, balance, at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	upsertHead, err := tx.PrepareContext(ctx, `INSERT INTO wallets (wallet_id, version, balance, at) VALUES (?, ?, ?, ?)
		ON CONFLICT (wallet_id) DO UPDATE SET version = excluded.version, balance = excluded.balance, at = excluded.at
		WHERE excluded.version > wallets.version`)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	insIdem, err := tx.PrepareContext(ctx, `INSERT INTO idempotency (wallet_id, key, fingerprint, seq, reply, at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}

	for i := range recs {
		r := &recs[i]
		e := &r.Event
		at := e.Time.UnixNano()
		var idem any
		if r.IdemKey != "" {
			idem = r.IdemKey
		}
		if err := insEvent.QueryRowContext(ctx, e.ID, e.StreamID, e.Version, e.Type, e.Schema, []byte(e.Data),
			e.CommandID, e.RequestID, idem, at).Scan(&e.Seq); err != nil {
			return fmt.Errorf("append event %s (wallet %s v%d): %w", e.ID, e.StreamID, e.Version, conflict(err))
		}
		if _, err := insState.ExecContext(ctx, e.StreamID, r.State.Version, r.State.Balance, at); err != nil {
			return fmt.Errorf("append state of wallet %s v%d: %w", e.StreamID, r.State.Version, conflict(err))
		}
		if _, err := upsertHead.ExecContext(ctx, e.StreamID, r.State.Version, r.State.Balance, at); err != nil {
			return fmt.Errorf("append head of wallet %s: %w", e.StreamID, err)
		}
		if r.IdemKey != "" {
			if _, err := insIdem.ExecContext(ctx, e.StreamID, r.IdemKey, r.Fingerprint, e.Seq, r.Reply, at); err != nil {
				return fmt.Errorf("append idempotency record of wallet %s: %w", e.StreamID, conflict(err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append: commit: %w", err)
	}
	return nil
}

func conflict(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	}
	return err
}

// Head is a wallet's latest state.
type Head struct {
	WalletID string
	State    wallet.State
	At       time.Time
}

// Heads calls fn with the latest state of every wallet, in wallet id order.
// It reads one row per wallet, never the events.
func (s *Store) Heads(ctx context.Context, fn func(Head) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT wallet_id, version, balance, at FROM wallets ORDER BY wallet_id`)
	if err != nil {
		return fmt.Errorf("heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h Head
		var at int64
		if err := rows.Scan(&h.WalletID, &h.State.Version, &h.State.Balance, &at); err != nil {
			return fmt.Errorf("heads: %w", err)
		}
		h.At = time.Unix(0, at).UTC()
		if err := fn(h); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Head returns the latest state of one wallet; a wallet with no events has the
// zero state.
func (s *Store) Head(ctx context.Context, walletID string) (Head, error) {
	h := Head{WalletID: walletID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT version, balance, at FROM wallets WHERE wallet_id = ?`, walletID).
		Scan(&h.State.Version, &h.State.Balance, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("head of wallet %s: %w", walletID, err)
	}
	h.At = time.Unix(0, at).UTC()
	return h, nil
}

// Outcome is a stored answer to an idempotent command.
type Outcome struct {
	Fingerprint string
	Reply       []byte
}

// Idempotency returns the outcome stored under (walletID, key), if any.
func (s *Store) Idempotency(ctx context.Context, walletID, key string) (Outcome, bool, error) {
	var o Outcome
	err := s.r.QueryRowContext(ctx, `SELECT fingerprint, reply FROM idempotency WHERE wallet_id = ? AND key = ?`, walletID, key).
		Scan(&o.Fingerprint, &o.Reply)
	if errors.Is(err, sql.ErrNoRows) {
		return Outcome{}, false, nil
	}
	if err != nil {
		return Outcome{}, false, fmt.Errorf("idempotency record of wallet %s: %w", walletID, err)
	}
	return o, true, nil
}

const eventColumns = `seq, id, wallet_id, version, type, schema, data, command_id, request_id, at`

func scanEvents(rows *sql.Rows, domain string) ([]event.Envelope, error) {
	defer rows.Close()
	var out []event.Envelope
	for rows.Next() {
		e := event.Envelope{Domain: domain}
		var at int64
		var data []byte
		if err := rows.Scan(&e.Seq, &e.ID, &e.StreamID, &e.Version, &e.Type, &e.Schema, &data, &e.CommandID, &e.RequestID, &at); err != nil {
			return nil, err
		}
		e.Data = data
		e.Time = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Domain is the domain name of every event in this log.
const Domain = "wallet"

// EventsAfter returns up to limit events with seq > after, in seq order.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]event.Envelope, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	evs, err := scanEvents(rows, Domain)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	return evs, nil
}

// WalletEvents returns up to limit events of one wallet with version > after,
// in version order.
func (s *Store) WalletEvents(ctx context.Context, walletID string, after int64, limit int) ([]event.Envelope, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE wallet_id = ? AND version > ? ORDER BY version LIMIT ?`,
		walletID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events of wallet %s: %w", walletID, err)
	}
	evs, err := scanEvents(rows, Domain)
	if err != nil {
		return nil, fmt.Errorf("events of wallet %s: %w", walletID, err)
	}
	return evs, nil
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

// StateLog returns the logged states of one wallet with version > after, in
// version order, up to limit.
func (s *Store) StateLog(ctx context.Context, walletID string, after int64, limit int) ([]wallet.State, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT version, balance FROM states WHERE wallet_id = ? AND version > ? ORDER BY version LIMIT ?`,
		walletID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("state log of wallet %s: %w", walletID, err)
	}
	defer rows.Close()
	var out []wallet.State
	for rows.Next() {
		var st wallet.State
		if err := rows.Scan(&st.Version, &st.Balance); err != nil {
			return nil, fmt.Errorf("state log of wallet %s: %w", walletID, err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// LastSeq returns the seq of the newest event, 0 for an empty log.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last seq: %w", err)
	}
	return seq.Int64, nil
}

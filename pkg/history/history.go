// Package history is history_writer: a durable JetStream consumer that keeps
// the global log of every event of every domain in its own SQLite file. Each
// fetched batch is inserted in one transaction with INSERT OR IGNORE by event
// id and acknowledged only after it commits, so every event lands exactly once
// across restarts and redeliveries. It reads the stream at its own pace and
// never slows the write path.
package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"coffer/pkg/bus"
	"coffer/pkg/event"
)

// Consumer is the durable consumer name on the EVENTS stream.
const Consumer = "history_writer"

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id    TEXT    NOT NULL UNIQUE,
	domain      TEXT    NOT NULL,
	stream_id   TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	type        TEXT    NOT NULL,
	schema      INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	command_id  TEXT    NOT NULL,
	request_id  TEXT    NOT NULL DEFAULT '',
	at          INTEGER NOT NULL,
	stream_seq  INTEGER NOT NULL,
	recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (domain, stream_id, version);
PRAGMA user_version = 1;
`

// Log is the history writer's SQLite file.
type Log struct {
	db *sql.DB
}

// Open opens (creating if needed) the history log at path.
func Open(ctx context.Context, path string) (*Log, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "5000")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	// The multi-row insert's statement journal stays in memory instead of
	// spilling to a temporary file it creates and deletes per batch.
	q.Add("_pragma", "temp_store(MEMORY)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: create schema: %w", path, err)
	}
	return &Log{db: db}, nil
}

// Close closes the log.
func (l *Log) Close() error { return l.db.Close() }

// Ping checks that the file can be read.
func (l *Log) Ping(ctx context.Context) error { return l.db.PingContext(ctx) }

// Entry is one received event and where it sat in the stream.
type Entry struct {
	Event     event.Envelope
	StreamSeq uint64
}

// Insert stores entries in one transaction, ignoring events already stored,
// and returns how many were new.
func (l *Log) Insert(ctx context.Context, entries []Entry, now time.Time) (int, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("insert: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	added := 0
	const perInsert = 256 // 12 variables a row
	for start := 0; start < len(entries); start += perInsert {
		part := entries[start:min(len(entries), start+perInsert)]
		args := make([]any, 0, 12*len(part))
		for _, en := range part {
			e := en.Event
			args = append(args, e.ID, e.Domain, e.StreamID, e.Version, e.Type, e.Schema, []byte(e.Data),
				e.CommandID, e.RequestID, e.Time.UnixNano(), en.StreamSeq, now.UnixNano())
		}
		row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO events
			(event_id, domain, stream_id, version, type, schema, data, command_id, request_id, at, stream_seq, recorded_at)
			VALUES `+strings.TrimSuffix(strings.Repeat(row+", ", len(part)), ", "), args...)
		if err != nil {
			return 0, fmt.Errorf("insert %d events: %w", len(part), err)
		}
		n, _ := res.RowsAffected()
		added += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("insert: commit: %w", err)
	}
	return added, nil
}

// Count returns how many events the log holds.
func (l *Log) Count(ctx context.Context) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n)
	return n, err
}

// Recorder moves events from the EVENTS stream into a Log.
type Recorder struct {
	consuming atomic.Bool // the durable consumer is bound

	js       jetstream.JetStream
	log      *Log
	l        *slog.Logger
	now      func() time.Time
	batch    int
	replicas int // of the EVENTS stream, when the recorder creates it
	metrics  *recorderMetrics
}

// NewRecorder returns a Recorder that fetches up to batch events at a time.
func NewRecorder(nc *nats.Conn, log *Log, l *slog.Logger, now func() time.Time, batch, replicas int) (*Recorder, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if batch <= 0 {
		batch = 256
	}
	return &Recorder{js: js, log: log, l: l, now: now, batch: batch, replicas: replicas, metrics: newRecorderMetrics()}, nil
}

// Run records events until ctx ends. It (re)creates the stream and its
// durable consumer whenever they are missing, and retries every failure.
func (r *Recorder) Run(ctx context.Context) error {
	var cons jetstream.Consumer
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if cons == nil {
			c, err := r.ensure(ctx)
			if err != nil {
				wait = bus.RetryWait(wait)
				r.l.Warn("cannot reach the events stream yet", "retry_in", wait.String(), "err", err)
				continue
			}
			cons = c
			r.consuming.Store(true)
		}
		if err := r.once(ctx, cons); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
				errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrNoResponders) {
				cons = nil
				r.consuming.Store(false)
			}
			wait = bus.RetryWait(wait)
			r.l.Warn("history batch failed", "retry_in", wait.String(), "err", err)
			continue
		}
		wait = 0
	}
}

// ConsumingProbe is a readiness probe: it fails while the recorder has no
// durable consumer on the EVENTS stream.
func (r *Recorder) ConsumingProbe(context.Context) error {
	if !r.consuming.Load() {
		return errors.New("no consumer on the events stream yet")
	}
	return nil
}

func (r *Recorder) ensure(ctx context.Context) (jetstream.Consumer, error) {
	if _, err := bus.EnsureStream(ctx, r.js, bus.EventsStreamConfig(r.replicas)); err != nil {
		return nil, fmt.Errorf("ensure stream: %w", err)
	}
	return bus.EnsureConsumer(ctx, r.js, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "history_writer: the global event log",
		FilterSubject: bus.EventSubjects,
		// Explicit acks: with AckAll, acking a later message would also ack
		// the messages a killed predecessor fetched and never stored.
		AckPolicy: jetstream.AckExplicitPolicy,
		// A batch is stored in milliseconds; what a crashed instance held
		// comes back after this long.
		AckWait:       5 * time.Second,
		MaxAckPending: 4 * r.batch,
	})
}

// once fetches one batch, stores it and acknowledges it.
func (r *Recorder) once(ctx context.Context, cons jetstream.Consumer) error {
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	msgs, err := cons.Fetch(r.batch, jetstream.FetchContext(fctx))
	if err != nil {
		return err
	}
	var entries []Entry
	var received []jetstream.Msg
	for m := range msgs.Messages() {
		received = append(received, m)
		var e event.Envelope
		meta, err := m.Metadata()
		if err == nil {
			err = json.Unmarshal(m.Data(), &e)
		}
		if err == nil {
			err = e.Validate()
		}
		if err != nil {
			// A message that is not an event can never be stored: say so
			// loudly, and do not let it block the stream.
			r.l.Error("dropping a message that is not a valid event", "subject", m.Subject(), "err", err)
			r.metrics.events.WithLabelValues("invalid").Inc()
			continue
		}
		entries = append(entries, Entry{Event: e, StreamSeq: meta.Sequence.Stream})
	}
	if err := msgs.Error(); err != nil && len(received) == 0 &&
		!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if len(received) == 0 {
		return nil
	}
	start := time.Now()
	added, err := r.log.Insert(context.WithoutCancel(ctx), entries, r.now())
	if err != nil {
		return err // not acked: JetStream redelivers after AckWait
	}
	r.metrics.insert.Observe(time.Since(start).Seconds())
	r.metrics.events.WithLabelValues("recorded").Add(float64(added))
	r.metrics.events.WithLabelValues("duplicate").Add(float64(len(entries) - added))
	// A lost ack only means a redelivery, which the insert ignores.
	for _, m := range received {
		if err := m.Ack(); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	r.l.Debug("history batch recorded", "received", len(entries), "new", added)
	return nil
}

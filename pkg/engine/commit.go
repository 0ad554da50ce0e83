package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// commitLoop is the single committer: it takes whatever commands are queued
// (up to MaxBatch) and commits them together, so one fsync serves them all.
// It returns once the queue is closed and drained.
//
// Committing is the first of two stages: while the finisher projects batch n
// to Redis and answers it, the committer already decides and writes batch
// n+1. The finisher takes batches in commit order, so Redis sees them in
// order, and still nobody is answered before their batch is durable and
// projected.
func (w *Writer) commitLoop() {
	finish := make(chan finished, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range finish {
			w.finishBatch(f)
		}
	}()
	defer func() {
		close(finish)
		<-done
	}()
	for p := range w.queue {
		batch := make([]*pending, 1, w.cfg.MaxBatch)
		batch[0] = p
	fill:
		for len(batch) < w.cfg.MaxBatch {
			select {
			case q, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		finish <- w.commit(batch)
	}
}

// finished is a decided batch on its way to Redis and to its requesters.
type finished struct {
	batch   []*pending
	answers []answer
	recs    []eventstore.Record // committed records; nil if none or the commit failed
	changes []readmodel.Change  // what Redis is told of them, a change per stream
}

// finishBatch projects a committed batch, then answers every command of it.
func (w *Writer) finishBatch(f finished) {
	start := time.Now()
	defer func() { w.stats.finishNanos.Add(int64(time.Since(start))) }()
	debug := w.log.Enabled(context.Background(), slog.LevelDebug)
	if len(f.recs) > 0 {
		w.pushCommitted(f.changes)
		w.feedOutbox(f.recs)
	}
	for i, p := range f.batch {
		a := f.answers[i]
		if a.sameAs >= 0 { // the same command twice in one batch: answer as the first
			orig := f.answers[a.sameAs]
			a.data, a.replayed, a.outcome = orig.data, orig.stored, orig.outcome
			if a.replayed {
				a.outcome = outcomeReplayed
			}
		}
		w.metrics.commands.WithLabelValues(p.host.name(), p.action, a.outcome).Inc()
		if p.reply == "" { // a stream's own command: nobody asked
			continue
		}
		msg := &nats.Msg{Subject: p.reply, Data: a.data}
		if a.replayed {
			w.stats.replayed.Add(1)
			msg.Header = nats.Header{bus.ReplayedHeader: []string{"true"}}
		}
		if debug {
			w.log.Debug("command answered", "request_id", p.wire.RequestID, "command_id", p.wire.CommandID,
				"domain", p.host.name(), "stream", p.id, "action", p.action, "data", string(p.wire.Data), "outcome", a.outcome)
		}
		if err := w.nc.PublishMsg(msg); err != nil {
			w.log.Warn("cannot answer command", "domain", p.host.name(), "stream", p.id, "command_id", p.wire.CommandID, "err", err)
		}
		w.metrics.answered.Observe(time.Since(p.arrived).Seconds())
	}
}

// answer is what one command of a batch will be told.
type answer struct {
	data     []byte
	outcome  string // for coffer_writer_commands_total
	replayed bool
	stored   bool // data is a durable outcome (so duplicates may replay it)
	recorded bool // the command adds records to the batch
	sameAs   int  // index of an earlier command of the batch with the same key, or -1
}

func errorAnswer(e *bus.Error) answer {
	outcome := outcomeRefused
	if e.Code == bus.CodeStorageUnavailable || e.Code == bus.CodeInternal {
		outcome = outcomeFailed
	}
	return answer{data: replyOf(Answer{Refusal: e}), outcome: outcome, sameAs: -1}
}

// replyOf is the wire form of a domain's answer.
func replyOf(a Answer) []byte {
	if a.Refusal != nil {
		data, _ := json.Marshal(bus.Reply{Error: a.Refusal})
		return data
	}
	return bus.ResultReply(a.Result)
}

// streamKey names a stream of any domain.
type streamKey struct{ domain, id string }

// batchWork is one batch in the making: its records, the streams they
// touch and how to put those back if the batch is not committed.
type batchWork struct {
	at      time.Time
	recs    []eventstore.Record
	touched map[streamKey]*touched
	order   []streamKey // of first touch
}

type touched struct {
	host    host
	restore func()
	from    int64 // the first version of the batch
	entries []readmodel.Entry
	fields  []readmodel.Field
}

// commit decides and stores one batch, and returns it for the finisher.
// Storage is the point of no return: nothing is answered or projected before
// the batch's transaction commits, and if it fails the in-memory states go
// back to what the log holds.
//
// Idempotency is checked optimistically. A command decided before is a
// retry, which is rare, and the log's UNIQUE (idem_key, domain, stream_id)
// refuses its records anyway (a command's last record carries its key). So
// the batch is decided as if none of its keys were taken and written at
// once; only if the write meets a taken key is it decided again, after one
// lookup of all its keys, and written again. A command decided without
// records (refused as bad input, or nothing due) meets no key in the write,
// so before it is answered the keys of those commands alone are looked up:
// a retry is answered with its first outcome, never with what its command
// would be told now.
func (w *Writer) commit(batch []*pending) finished {
	started := time.Now()
	for _, p := range batch {
		w.metrics.queued.Observe(started.Sub(p.arrived).Seconds())
	}
	first := firstOfKeys(batch)
	b, answers := w.decideBatch(batch, first, nil, nil)
	w.confirmUnrecorded(batch, first, answers)
	changes := b.changes() // before the write: a failed one puts the states back
	w.stats.decideNanos.Add(int64(time.Since(started)))
	w.metrics.batch.Observe(float64(len(batch)))
	err := w.append(b)
	if errors.Is(err, eventstore.ErrVersionConflict) {
		w.stats.redecided.Add(1)
		known, lookupErr := w.lookup(batch, first)
		b, answers = w.decideBatch(batch, first, known, lookupErr)
		changes = b.changes()
		err = w.append(b)
	}
	if err != nil {
		w.log.Error("batch not committed", "events", len(b.recs), "err", err)
		for i := range answers {
			if answers[i].recorded {
				answers[i] = errorAnswer(&bus.Error{Code: bus.CodeStorageUnavailable, Detail: "the log cannot be written; nothing was applied; retry"})
			}
		}
		b.recs, changes = nil, nil
	}
	w.scheduleAlarms(batch)
	w.stats.commands.Add(int64(len(batch)))
	return finished{batch: batch, answers: answers, recs: b.recs, changes: changes}
}

// firstOfKeys maps each (stream, key) of the batch to its first command
// under it.
func firstOfKeys(batch []*pending) map[eventstore.Key]int {
	first := make(map[eventstore.Key]int, len(batch))
	for i, p := range batch {
		if _, ok := first[p.key]; !ok {
			first[p.key] = i
		}
	}
	return first
}

// decideBatch decides every command of the batch, given what the log
// recorded under their keys (known; nil when not looked up).
func (w *Writer) decideBatch(batch []*pending, first map[eventstore.Key]int, known map[eventstore.Key]eventstore.Recorded, lookupErr error) (*batchWork, []answer) {
	b := &batchWork{at: w.now().UTC(), recs: make([]eventstore.Record, 0, len(batch)), touched: make(map[streamKey]*touched)}
	answers := make([]answer, len(batch))
	for i := range batch {
		answers[i] = w.decideOne(b, batch, i, first, known, lookupErr)
	}
	return b, answers
}

// confirmUnrecorded looks up the keys of the commands decided without
// records, and answers those that were decided before with their first
// outcome. Those commands changed no state, so the rest of the batch
// stands as decided.
func (w *Writer) confirmUnrecorded(batch []*pending, first map[eventstore.Key]int, answers []answer) {
	var keys []eventstore.Key
	for i, p := range batch {
		if a := answers[i]; !a.recorded && a.sameAs < 0 && first[p.key] == i {
			keys = append(keys, p.key)
		}
	}
	if len(keys) == 0 {
		return
	}
	known, err := w.store.Lookup(context.Background(), keys)
	if err != nil {
		w.log.Error("idempotency lookup failed", "commands", len(keys), "err", err)
	}
	for i, p := range batch {
		if a := answers[i]; a.recorded || a.sameAs >= 0 || first[p.key] != i {
			continue
		}
		if err != nil {
			answers[i] = errorAnswer(&bus.Error{Code: bus.CodeStorageUnavailable, Detail: "the log cannot be read; retry"})
		} else if rec, found := known[p.key]; found {
			answers[i] = w.replay(p, rec)
		}
	}
}

// lookup finds, in one query, every command of the batch that was decided
// before.
func (w *Writer) lookup(batch []*pending, first map[eventstore.Key]int) (map[eventstore.Key]eventstore.Recorded, error) {
	keys := make([]eventstore.Key, 0, len(first))
	for i, p := range batch {
		if first[p.key] == i {
			keys = append(keys, p.key)
		}
	}
	known, err := w.store.Lookup(context.Background(), keys)
	if err != nil {
		w.log.Error("idempotency lookup failed", "commands", len(batch), "err", err)
	}
	return known, err
}

// decideOne answers command i of the batch: as a duplicate of an earlier
// one, as a replay of what the log recorded under its key, or by deciding
// it and adding its records to the batch.
func (w *Writer) decideOne(b *batchWork, batch []*pending, i int, first map[eventstore.Key]int, known map[eventstore.Key]eventstore.Recorded, lookupErr error) answer {
	p := batch[i]
	k := p.key
	if j := first[k]; j != i {
		if batch[j].cmd.fingerprint() != p.cmd.fingerprint() {
			return reusedAnswer()
		}
		return answer{sameAs: j}
	}
	if lookupErr != nil {
		return errorAnswer(&bus.Error{Code: bus.CodeStorageUnavailable, Detail: "the log cannot be read; retry"})
	}
	if rec, found := known[k]; found {
		return w.replay(p, rec)
	}
	sk := streamKey{p.host.name(), p.id}
	t := b.touched[sk]
	var restore func()
	if t == nil {
		restore = p.host.keep(p.id)
	}
	d, refusal := p.cmd.decide(stamp{at: b.at, commandID: p.wire.CommandID, requestID: p.wire.RequestID, newID: newEventID})
	if refusal != nil {
		if refusal.Code == bus.CodeInternal {
			w.log.Error("cannot record an event", "domain", sk.domain, "stream", sk.id, "detail", refusal.Detail)
		}
		return errorAnswer(refusal)
	}
	if len(d.records) == 0 { // an alarm that is no longer due
		return answer{outcome: outcomeNothing, sameAs: -1}
	}
	if t == nil {
		t = &touched{host: p.host, restore: restore, from: d.records[0].Event.Version}
		b.touched[sk] = t
		b.order = append(b.order, sk)
	}
	t.entries = append(t.entries, d.entries...)
	t.fields = append(t.fields, d.fields...)
	last := &d.records[len(d.records)-1]
	last.IdemKey, last.Request = k.IdemKey, p.cmd.fingerprint()
	b.recs = append(b.recs, d.records...)
	outcome := outcomeApplied
	if d.answer.Refusal != nil {
		outcome = outcomeRejected
	}
	return answer{data: replyOf(d.answer), outcome: outcome, stored: true, recorded: true, sameAs: -1}
}

func newEventID() string { return ksuid.New().String() }

// changes is what Redis is told of the batch: for each stream it touched,
// its state after the batch and its new list entries.
func (b *batchWork) changes() []readmodel.Change {
	out := make([]readmodel.Change, 0, len(b.order))
	for _, sk := range b.order {
		t := b.touched[sk]
		version, view := t.host.view(sk.id, b.at)
		out = append(out, readmodel.Change{Domain: sk.domain, ID: sk.id, Lists: t.host.lists(), Hashes: t.host.hashes(), Indexed: t.host.indexed(),
			From: t.from, Version: version, State: view, Entries: t.entries, Fields: t.fields})
	}
	return out
}

// append writes the batch's records, if any, in one transaction. If that
// fails, it puts every stream the batch touched back as the log has it.
func (w *Writer) append(b *batchWork) error {
	if len(b.recs) == 0 {
		return nil
	}
	start := time.Now()
	err := w.store.Append(context.Background(), b.recs)
	took := time.Since(start)
	w.stats.appendNanos.Add(int64(took))
	if err != nil {
		for _, sk := range b.order {
			b.touched[sk].restore()
		}
		return err
	}
	w.metrics.commit.Observe(took.Seconds())
	w.metrics.fsyncs.WithLabelValues("wal").Inc()
	w.stats.commits.Add(1)
	w.stats.events.Add(int64(len(b.recs)))
	if int64(len(b.recs)) > w.stats.maxBatch.Load() {
		w.stats.maxBatch.Store(int64(len(b.recs)))
	}
	return nil
}

// replay answers a command that was decided before with the outcome its
// last event records, byte for byte what the first answer was.
func (w *Writer) replay(p *pending, rec eventstore.Recorded) answer {
	if rec.Request != p.cmd.fingerprint() {
		return reusedAnswer()
	}
	a, err := p.host.replay(p.id, rec)
	if err != nil {
		w.log.Error("cannot read a recorded event", "domain", p.host.name(), "stream", p.id, "err", err)
		return errorAnswer(&bus.Error{Code: bus.CodeInternal, Detail: "the recorded outcome of this command cannot be read"})
	}
	return answer{data: replyOf(a), outcome: outcomeReplayed, replayed: true, stored: true, sameAs: -1}
}

func reusedAnswer() answer {
	return errorAnswer(&bus.Error{Code: bus.CodeIdempotencyKeyReused,
		Detail: "this Idempotency-Key was already used for a different request on this stream; use a new key for a new request"})
}

// pushCommitted projects a committed batch to Redis before anyone is
// answered, so a client that reads after its write sees it. If the push
// fails, or an earlier one failed and the projector has not yet reached
// Redis again, the streams are left to the projector, which catches up from
// the log; the committer does not wait on a Redis that is down.
func (w *Writer) pushCommitted(changes []readmodel.Change) {
	if !w.redisDown.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.RedisTimeout)
		gaps, err := w.proj.Push(ctx, changes)
		cancel()
		if err == nil {
			// Redis lacked the history before these changes (it lost
			// data): the projector fills it in from the log.
			for _, i := range gaps {
				w.dirty.add(streamKey{changes[i].Domain, changes[i].ID}, 0, changes[i].Version) // how much it lost is unknown: at most all
			}
			return
		}
		w.redisDown.Store(true)
		w.log.Warn("redis push failed; the projector will catch up from the log", "streams", len(changes), "err", err)
	}
	for _, c := range changes {
		w.dirty.add(streamKey{c.Domain, c.ID}, c.From-1, c.Version)
	}
}

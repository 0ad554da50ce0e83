package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
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
	evs     []wallet.Event
}

// finishBatch projects a committed batch, then answers every command of it.
func (w *Writer) finishBatch(f finished) {
	start := time.Now()
	defer func() { w.stats.finishNanos.Add(int64(time.Since(start))) }()
	debug := w.log.Enabled(context.Background(), slog.LevelDebug)
	if len(f.recs) > 0 {
		w.pushCommitted(f.recs, f.evs)
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
		msg := &nats.Msg{Subject: p.reply, Data: a.data}
		if a.replayed {
			w.stats.replayed.Add(1)
			msg.Header = nats.Header{bus.ReplayedHeader: []string{"true"}}
		}
		w.metrics.commands.WithLabelValues(string(p.action), a.outcome).Inc()
		if debug {
			w.log.Debug("command answered", "request_id", p.cmd.RequestID, "command_id", p.cmd.CommandID,
				"wallet", p.walletID, "action", string(p.action), "amount", p.cmd.Amount, "outcome", a.outcome)
		}
		if err := w.nc.PublishMsg(msg); err != nil {
			w.log.Warn("cannot answer command", "wallet", p.walletID, "command_id", p.cmd.CommandID, "err", err)
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
	rec      int  // index of the record this command adds, or -1
	sameAs   int  // index of an earlier command of the batch with the same key, or -1
}

func errorAnswer(code bus.Code, detail string, st *wallet.State) answer {
	e := &bus.Error{Code: code, Detail: detail}
	if st != nil {
		e.Balance, e.Version = &st.Balance, &st.Version
	}
	data, _ := json.Marshal(bus.Reply{Error: e})
	outcome := outcomeRefused
	if code == bus.CodeStorageUnavailable || code == bus.CodeInternal {
		outcome = outcomeFailed
	}
	return answer{data: data, outcome: outcome, rec: -1, sameAs: -1}
}

// commit decides and stores one batch, and returns it for the finisher.
// Storage is the point of no return: nothing is answered or projected before
// the batch's transaction commits, and if it fails the in-memory states go
// back to what the log holds.
func (w *Writer) commit(batch []*pending) finished {
	started := time.Now()
	for _, p := range batch {
		w.metrics.queued.Observe(started.Sub(p.arrived).Seconds())
	}
	ctx := context.Background()
	now := w.now().UTC()
	answers := make([]answer, len(batch))
	recs := make([]eventstore.Record, 0, len(batch))
	evs := make([]wallet.Event, 0, len(batch))
	first := make(map[string]int, len(batch))
	before := make(map[string]wallet.State)

	// One query finds every command of the batch that was decided before.
	keys := make([]eventstore.Key, 0, len(batch))
	for i, p := range batch {
		k := p.walletID + "\x00" + p.key()
		if _, ok := first[k]; !ok {
			first[k] = i
			keys = append(keys, eventstore.Key{WalletID: p.walletID, IdemKey: p.key()})
		}
	}
	known, lookupErr := w.store.Lookup(ctx, keys)
	if lookupErr != nil {
		w.log.Error("idempotency lookup failed", "commands", len(batch), "err", lookupErr)
	}

	for i, p := range batch {
		key, fp := p.key(), p.fingerprint()
		if j := first[p.walletID+"\x00"+key]; j != i {
			if batch[j].fingerprint() != fp {
				answers[i] = reusedAnswer(key)
			} else {
				answers[i] = answer{rec: -1, sameAs: j}
			}
			continue
		}
		if lookupErr != nil {
			answers[i] = errorAnswer(bus.CodeStorageUnavailable, "the wallet log cannot be read; retry", nil)
			continue
		}
		if rec, found := known[eventstore.Key{WalletID: p.walletID, IdemKey: key}]; found {
			answers[i] = w.replay(p, fp, rec)
			continue
		}

		st := w.states[p.walletID]
		ev, err := wallet.Decide(st, wallet.Command{Action: p.action, Amount: p.cmd.Amount})
		switch {
		case errors.Is(err, wallet.ErrBalanceOverflow):
			answers[i] = errorAnswer(bus.CodeBalanceOverflow, fmt.Sprintf("crediting %d would overflow the balance of %d", p.cmd.Amount, st.Balance), &st)
			continue
		case errors.Is(err, wallet.ErrInvalidAmount):
			answers[i] = errorAnswer(bus.CodeInvalidAmount, err.Error(), nil)
			continue
		case err != nil:
			answers[i] = errorAnswer(bus.CodeInvalidBody, err.Error(), nil)
			continue
		}
		data, err := wallet.EncodeEvent(ev)
		if err != nil {
			w.log.Error("cannot encode event", "wallet", p.walletID, "err", err)
			answers[i] = errorAnswer(bus.CodeInternal, "the wallet writer cannot record this event", nil)
			continue
		}
		if _, ok := before[p.walletID]; !ok {
			before[p.walletID] = st
		}
		next := wallet.Evolve(st, ev)
		w.states[p.walletID] = next
		env := event.Envelope{
			ID:        ksuid.New().String(),
			Domain:    eventstore.Domain,
			StreamID:  p.walletID,
			Version:   ev.Version,
			Type:      string(ev.Type),
			Schema:    wallet.SchemaVersion,
			Data:      data,
			Time:      now,
			CommandID: p.cmd.CommandID,
			RequestID: p.cmd.RequestID,
		}
		reply := outcomeReply(p.walletID, ev, next, env)
		recs = append(recs, eventstore.Record{Event: env, State: next, IdemKey: key})
		evs = append(evs, ev)
		outcome := outcomeApplied
		if ev.Type == wallet.DebitRejected {
			outcome = outcomeRejected
		}
		answers[i] = answer{data: reply, outcome: outcome, stored: true, rec: len(recs) - 1, sameAs: -1}
	}

	w.stats.decideNanos.Add(int64(time.Since(started)))
	w.metrics.batch.Observe(float64(len(batch)))
	if len(recs) > 0 {
		appendStart := time.Now()
		err := w.store.Append(ctx, recs)
		took := time.Since(appendStart)
		w.stats.appendNanos.Add(int64(took))
		w.metrics.commit.Observe(took.Seconds())
		if err != nil {
			for id, st := range before {
				w.states[id] = st
			}
			w.log.Error("batch not committed", "commands", len(recs), "err", err)
			for i := range answers {
				if answers[i].rec >= 0 {
					answers[i] = errorAnswer(bus.CodeStorageUnavailable, "the wallet log cannot be written; nothing was applied; retry", nil)
				}
			}
			recs, evs = nil, nil
		} else {
			w.metrics.fsyncs.WithLabelValues("wal").Inc()
			w.stats.commits.Add(1)
			w.stats.events.Add(int64(len(recs)))
			if int64(len(recs)) > w.stats.maxBatch.Load() {
				w.stats.maxBatch.Store(int64(len(recs)))
			}
		}
	}
	w.stats.commands.Add(int64(len(batch)))
	return finished{batch: batch, answers: answers, recs: recs, evs: evs}
}

// replay answers a command that was decided before with the outcome its
// event records, byte for byte what the first answer was.
func (w *Writer) replay(p *pending, fp string, rec eventstore.Recorded) answer {
	ev, err := wallet.DecodeEvent(wallet.EventType(rec.Event.Type), rec.Event.Schema, rec.Event.Version, rec.Event.Data)
	if err != nil {
		w.log.Error("cannot read a recorded event", "wallet", p.walletID, "event", rec.Event.ID, "err", err)
		return errorAnswer(bus.CodeInternal, "the recorded outcome of this command cannot be read", nil)
	}
	if fingerprint(ev) != fp {
		return reusedAnswer(p.key())
	}
	st := wallet.State{Balance: rec.Balance, Version: rec.Event.Version}
	return answer{data: outcomeReply(p.walletID, ev, st, rec.Event), outcome: outcomeReplayed, replayed: true, stored: true, rec: -1, sameAs: -1}
}

// fingerprint is the request an event answers, in the form of
// pending.fingerprint.
func fingerprint(ev wallet.Event) string {
	action := wallet.Debit
	if ev.Type == wallet.Credited {
		action = wallet.Credit
	}
	return requestFingerprint(action, ev.Amount)
}

func reusedAnswer(key string) answer {
	return errorAnswer(bus.CodeIdempotencyKeyReused,
		"this Idempotency-Key was already used for a different request on this wallet; use a new key for a new request", nil)
}

// outcomeReply is the stored and returned answer to a decided command.
func outcomeReply(walletID string, ev wallet.Event, st wallet.State, env event.Envelope) []byte {
	if ev.Type == wallet.DebitRejected {
		detail := fmt.Sprintf("the balance of %d does not cover a debit of %d", st.Balance, ev.Amount)
		data, _ := json.Marshal(bus.Reply{Error: &bus.Error{Code: bus.CodeInsufficientFunds, Detail: detail, Balance: &st.Balance, Version: &st.Version}})
		return data
	}
	res, _ := json.Marshal(bus.Result{
		WalletID:    walletID,
		Balance:     st.Balance,
		Version:     st.Version,
		Timestamp:   env.Time,
		Transaction: wallet.NewTransaction(env.ID, ev, env.Time),
	})
	return bus.ResultReply(res)
}

// pushCommitted projects a committed batch to Redis before anyone is
// answered, so a client that reads after its write sees it. If the push
// fails, or an earlier one failed and the projector has not yet reached
// Redis again, the wallets are left to the projector, which catches up from
// the log; the committer does not wait on a Redis that is down.
func (w *Writer) pushCommitted(recs []eventstore.Record, evs []wallet.Event) {
	changes := make([]readmodel.Change, 0, len(recs))
	index := make(map[string]int, len(recs))
	for i, r := range recs {
		id := r.Event.StreamID
		j, ok := index[id]
		if !ok {
			j = len(changes)
			index[id] = j
			changes = append(changes, readmodel.Change{})
		}
		c := &changes[j]
		c.View = readmodel.View{WalletID: id, Balance: r.State.Balance, Version: r.State.Version, UpdatedAt: r.Event.Time}
		c.Transactions = append(c.Transactions, wallet.NewTransaction(r.Event.ID, evs[i], r.Event.Time))
	}
	if !w.redisDown.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.RedisTimeout)
		gaps, err := w.proj.Push(ctx, changes)
		cancel()
		if err == nil {
			// Redis lacked the history before these changes (it lost
			// data): the projector fills it in from the log.
			for _, id := range gaps {
				w.dirty.add(id, 0, changes[index[id]].View.Version) // how much it lost is unknown: at most all
			}
			return
		}
		w.redisDown.Store(true)
		w.log.Warn("redis push failed; the projector will catch up from the log", "wallets", len(changes), "err", err)
	}
	for _, c := range changes {
		w.dirty.add(c.View.WalletID, c.Transactions[0].Version-1, c.View.Version)
	}
}

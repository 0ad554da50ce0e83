package engine

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/eventstore"
	"coffer/pkg/natstest"
	"coffer/pkg/readmodel"
	"coffer/pkg/redistest"
	"coffer/pkg/testwait"
)

// rig is a writer of the two toy domains alpha and beta over a real
// nats-server, redis-server and SQLite file.
type rig struct {
	w       *Writer
	ds      *Domains
	store   *eventstore.Store
	path    string
	proj    *readmodel.Projection
	redis   *redistest.Server
	nc      *nats.Conn
	domains []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	var ds Domains
	if err := errors.Join(Register(&ds, tally{"alpha"}), Register(&ds, tally{"beta"})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log.db")
	store, err := eventstore.Open(context.Background(), path, eventstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rs := redistest.Start(t)
	proj := readmodel.New(rs.Client(t))
	nc := natstest.Start(t).Connect(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := New(Config{LeaseTTL: 2 * time.Second}, &ds, nc, store, proj, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{w: w, ds: &ds, store: store, path: path, proj: proj, redis: rs, nc: nc, domains: ds.Names()}
}

// cmd is a command as handle queues it, answered on its own inbox.
type cmd struct {
	p   *pending
	sub *nats.Subscription
}

func (r *rig) cmd(t *testing.T, domain, id string, add int64, key string) cmd {
	t.Helper()
	h := r.w.hosts[domain]
	c, perr := h.decode(id, "add", fmt.Appendf(nil, `{"Add":%d}`, add))
	if perr != nil {
		t.Fatal(perr)
	}
	inbox := nats.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	wire := bus.Command{CommandID: ksuid.New().String(), IdempotencyKey: key}
	return cmd{p: newPending(h, id, "add", wire, c, inbox, time.Now()), sub: sub}
}

// batch commits cmds as one batch, finishes it (Redis, answers), and
// returns each command's answer.
func (r *rig) batch(t *testing.T, cmds ...cmd) []reply {
	t.Helper()
	ps := make([]*pending, len(cmds))
	for i, c := range cmds {
		ps[i] = c.p
	}
	r.w.finishBatch(r.w.commit(ps))
	out := make([]reply, len(cmds))
	for i, c := range cmds {
		msg, err := c.sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		out[i] = readReply(t, msg)
	}
	return out
}

// reply is an answer as the requester reads it.
type reply struct {
	raw      []byte
	replayed bool
	result   map[string]any
	err      *bus.Error
}

func readReply(t *testing.T, msg *nats.Msg) reply {
	t.Helper()
	var r bus.Reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatalf("reply %q: %v", msg.Data, err)
	}
	out := reply{raw: msg.Data, replayed: msg.Header.Get(bus.ReplayedHeader) == "true", err: r.Error}
	if r.Result != nil {
		if err := json.Unmarshal(r.Result, &out.result); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (r *rig) events(t *testing.T, domain, id string) []eventstore.Recorded {
	t.Helper()
	recs, err := r.store.StreamEvents(context.Background(), domain, id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (r *rig) verify(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	if err := Verify(context.Background(), r.ds, readmodel.Whole, r.store, r.proj, &out, time.Now()); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	return out.String()
}

// sql opens the writer's log beside it, as another process would, for
// the rest of the test.
func (r *rig) sql(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+r.path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// markComplete marks the read model complete, as the projector does once
// it has compared Redis with the log (here, both empty).
func (r *rig) markComplete(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := r.proj.BeginRebuild(ctx, readmodel.Whole, "t"); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.proj.FinishRebuild(ctx, readmodel.Whole, "t"); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

func TestTwoDomainsInOneBatch(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	ans := r.batch(t,
		r.cmd(t, "alpha", "x", 5, "k1"),
		r.cmd(t, "beta", "x", 6, "k1"), // the same id and key in another domain is another stream
		r.cmd(t, "alpha", "y", 1, ""),
		r.cmd(t, "alpha", "x", 2, "k2"),
	)
	for i, a := range ans {
		if a.err != nil || a.replayed {
			t.Fatalf("answer %d: %+v", i, a)
		}
	}
	if ans[0].result["n"] != 5.0 || ans[1].result["n"] != 6.0 || ans[3].result["n"] != 7.0 || ans[3].result["version"] != 2.0 {
		t.Fatalf("answers: %+v", ans)
	}
	if st := r.w.Stats(); st.Commits != 1 || st.Events != 4 {
		t.Fatalf("4 commands of two domains in %d commits, %d events", st.Commits, st.Events)
	}
	for _, c := range []struct {
		domain, id string
		states     []string
	}{
		{"alpha", "x", []string{`{"n":5}`, `{"n":7}`}},
		{"beta", "x", []string{`{"n":6}`}},
		{"alpha", "y", []string{`{"n":1}`}},
	} {
		recs := r.events(t, c.domain, c.id)
		if len(recs) != len(c.states) {
			t.Fatalf("%s %s: %d events, want %d", c.domain, c.id, len(recs), len(c.states))
		}
		for i, rec := range recs {
			if rec.Event.Domain != c.domain || rec.Event.Version != int64(i+1) || string(rec.State) != c.states[i] {
				t.Fatalf("%s %s event %d: %+v %s", c.domain, c.id, i, rec.Event, rec.State)
			}
		}
	}
	state, err := r.proj.State(context.Background(), "beta", "x")
	if err != nil || !strings.Contains(string(state), `"n":6,"version":1`) {
		t.Fatalf("beta.x in Redis: %s %v", state, err)
	}
	r.verify(t)
}

// A key taken twice in one batch: the same request is answered twice with
// the one outcome and recorded once; another request under it is refused.
func TestBatchDedupe(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	ans := r.batch(t,
		r.cmd(t, "alpha", "x", 5, "k"),
		r.cmd(t, "alpha", "x", 5, "k"),
		r.cmd(t, "alpha", "x", 9, "k"),
		r.cmd(t, "beta", "x", 9, "k"),
	)
	if ans[0].err != nil || ans[0].replayed || !ans[1].replayed || !bytes.Equal(ans[0].raw, ans[1].raw) {
		t.Fatalf("the same command twice in a batch: %+v / %+v", ans[0], ans[1])
	}
	if ans[2].err == nil || ans[2].err.Code != bus.CodeIdempotencyKeyReused {
		t.Fatalf("another request under the key: %+v", ans[2])
	}
	if ans[3].err != nil || ans[3].result["n"] != 9.0 {
		t.Fatalf("the key in another domain: %+v", ans[3])
	}
	if n := len(r.events(t, "alpha", "x")); n != 1 {
		t.Fatalf("%d events of alpha x, want 1", n)
	}
	r.verify(t)
}

// A command decided in an earlier batch is answered again, byte for byte,
// from the log: an applied one, a refused one, one of two events.
func TestIdempotentReplay(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	first := r.batch(t,
		r.cmd(t, "alpha", "x", 90, "a"),
		r.cmd(t, "alpha", "x", 50, "b"), // over the limit: refused, recorded
		r.cmd(t, "alpha", "y", 7, "c"),  // two events
	)
	if first[1].err == nil || first[1].err.Code != bus.CodeInsufficientFunds {
		t.Fatalf("refusal: %+v", first[1])
	}
	if first[2].result["n"] != 7.0 || first[2].result["version"] != 2.0 {
		t.Fatalf("two events: %+v", first[2])
	}
	// Replays in a later batch, beside a new command.
	again := r.batch(t,
		r.cmd(t, "alpha", "y", 7, "c"),
		r.cmd(t, "alpha", "x", 50, "b"),
		r.cmd(t, "alpha", "x", 90, "a"),
		r.cmd(t, "alpha", "x", 1, "d"),
	)
	for i, j := range []int{2, 1, 0} {
		if !again[i].replayed || !bytes.Equal(again[i].raw, first[j].raw) {
			t.Fatalf("replay of %d:\n got %s (replayed %v)\nwant %s", j, again[i].raw, again[i].replayed, first[j].raw)
		}
	}
	if again[3].err != nil || again[3].result["version"] != 3.0 {
		t.Fatalf("a new command after replays: %+v", again[3])
	}
	recs := r.events(t, "alpha", "y")
	if len(recs) != 2 {
		t.Fatalf("%d events of alpha y, want 2", len(recs))
	}
	// Only the command's last event carries its key.
	known, err := r.store.Lookup(context.Background(), []eventstore.Key{{Domain: "alpha", StreamID: "y", IdemKey: "k:c"}})
	if err != nil || known[eventstore.Key{Domain: "alpha", StreamID: "y", IdemKey: "k:c"}].Event.Version != 2 {
		t.Fatalf("the key of a two-event command names %+v (%v)", known, err)
	}
	r.verify(t)
}

// The batch is written without looking its keys up first; a retry among
// new commands makes the write meet its key, and the batch is decided
// again. A retry that would now be refused without an event (the tally
// is full since) meets no key in the write: it is still answered with its
// first outcome, and nothing is stored for it.
func TestRetriesFoundWithoutALookupFirst(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	first := r.batch(t,
		r.cmd(t, "alpha", "x", 60, "a"),
		r.cmd(t, "alpha", "x", 40, "b"), // full
	)
	if first[0].err != nil || first[1].err != nil || first[1].result["n"] != 100.0 {
		t.Fatalf("filling the tally: %+v", first)
	}
	if ans := r.batch(t, r.cmd(t, "alpha", "x", 1, "c")); ans[0].err == nil || ans[0].err.Code != codeTallyFull || ans[0].replayed {
		t.Fatalf("a new addition to a full tally: %+v", ans[0])
	}
	redecided := r.w.Stats().Redecided
	again := r.batch(t,
		r.cmd(t, "alpha", "x", 40, "b"),
		r.cmd(t, "alpha", "x", 60, "a"),
		r.cmd(t, "alpha", "x", 5, "d"),  // a new one: refused, full
		r.cmd(t, "alpha", "x", 40, "c"), // the key of a refusal with no event is free
		r.cmd(t, "alpha", "y", 5, "e"),
	)
	for i, j := range []int{1, 0} {
		if !again[i].replayed || !bytes.Equal(again[i].raw, first[j].raw) {
			t.Fatalf("retry of %d:\n got %s (replayed %v)\nwant %s", j, again[i].raw, again[i].replayed, first[j].raw)
		}
	}
	for _, i := range []int{2, 3} {
		if again[i].err == nil || again[i].err.Code != codeTallyFull || again[i].replayed {
			t.Fatalf("new addition %d to a full tally: %+v", i, again[i])
		}
	}
	if again[4].err != nil || again[4].result["n"] != 5.0 {
		t.Fatalf("a new addition to another tally: %+v", again[4])
	}
	if got := r.w.Stats().Redecided - redecided; got != 0 {
		t.Fatalf("%d batches decided again, want 0: no write met a taken key", got)
	}
	if n := len(r.events(t, "alpha", "x")); n != 2 {
		t.Fatalf("%d events of alpha x, want 2", n)
	}
	// A retry that records again meets its key in the write: the batch is
	// decided again, its new command with it.
	r.batch(t, r.cmd(t, "alpha", "z", 5, "f"))
	ans := r.batch(t, r.cmd(t, "alpha", "z", 6, "g"), r.cmd(t, "alpha", "z", 5, "f"), r.cmd(t, "alpha", "z", 7, "h"))
	if ans[0].err != nil || ans[0].result["version"] != 2.0 || !ans[1].replayed || ans[1].result["version"] != 1.0 || ans[2].result["n"] != 18.0 {
		t.Fatalf("a retry among new commands: %+v", ans)
	}
	if got := r.w.Stats().Redecided - redecided; got != 1 {
		t.Fatalf("%d batches decided again, want 1", got)
	}
	if n := len(r.events(t, "alpha", "z")); n != 4 { // 5, 6, then 7 as 3 and 4
		t.Fatalf("%d events of alpha z, want 4", n)
	}
	r.verify(t)
}

// A key used again for another request is refused, and nothing is stored.
func TestReusedKey(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	r.batch(t, r.cmd(t, "alpha", "x", 5, "k"))
	ans := r.batch(t, r.cmd(t, "alpha", "x", 6, "k"))
	if ans[0].err == nil || ans[0].err.Code != bus.CodeIdempotencyKeyReused || ans[0].replayed {
		t.Fatalf("another request under a used key: %+v", ans[0])
	}
	if n := len(r.events(t, "alpha", "x")); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	// Without a client key, each command id is its own key.
	a, b := r.cmd(t, "alpha", "x", 6, ""), r.cmd(t, "alpha", "x", 6, "")
	if ans := r.batch(t, a, b); ans[0].err != nil || ans[1].err != nil || ans[1].result["version"] != 3.0 {
		t.Fatalf("two commands without a key: %+v", ans)
	}
}

// A batch whose transaction fails stores nothing and leaves every stream it
// touched as the log has it, in memory too: the next command of such a
// stream is decided from its logged state.
func TestRollbackWhenTheTransactionFails(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	r.batch(t, r.cmd(t, "alpha", "a", 10, ""))
	// Someone else wrote version 1 of beta z behind the writer's back: the
	// batch that would write it fails on the UNIQUE (domain, stream,
	// version).
	// (Its seq is far from the writer's, which it counts itself.)
	if _, err := r.sql(t).Exec(`INSERT INTO events (seq, id, domain, stream_id, version, type, schema, data, state, command_id, at)
		VALUES (1000000, 'x', 'beta', 'z', 1, 'added', 1, '{}', '{"n":0}', 'c', 0)`); err != nil {
		t.Fatal(err)
	}
	ans := r.batch(t,
		r.cmd(t, "alpha", "a", 5, "k"),
		r.cmd(t, "alpha", "new", 1, ""),
		r.cmd(t, "beta", "z", 2, ""),
		r.cmd(t, "alpha", "a", 0, ""), // refused before deciding: not part of the write
	)
	for i, a := range ans[:3] {
		if a.err == nil || a.err.Code != bus.CodeStorageUnavailable {
			t.Fatalf("answer %d of a failed batch: %+v", i, a)
		}
	}
	if ans[3].err == nil || ans[3].err.Code != bus.CodeInvalidAmount {
		t.Fatalf("the invalid command: %+v", ans[3])
	}
	if n := len(r.events(t, "alpha", "a")); n != 1 {
		t.Fatalf("alpha a has %d events after a failed batch, want 1", n)
	}
	if n := len(r.events(t, "alpha", "new")); n != 0 {
		t.Fatalf("alpha new has %d events after a failed batch", n)
	}
	if v, _ := r.w.hosts["alpha"].view("a", time.Now()); v != 1 {
		t.Fatalf("alpha a is at v%d in memory after a failed batch, want 1", v)
	}
	if _, ok := r.w.hosts["alpha"].(*hosted[tallyState, tallyCmd, tallyEvent]).states["new"]; ok {
		t.Fatal("a stream first seen in a failed batch is still in memory")
	}
	// The same key again is decided afresh, from the logged state.
	ans = r.batch(t, r.cmd(t, "alpha", "a", 5, "k"), r.cmd(t, "alpha", "new", 1, ""))
	if ans[0].err != nil || ans[0].replayed || ans[0].result["n"] != 15.0 || ans[0].result["version"] != 2.0 || ans[1].result["version"] != 1.0 {
		t.Fatalf("after the failed batch: %+v", ans)
	}
}

// run starts the writer; it stops at the end of the test.
func (r *rig) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testwait.Until(t, 10*time.Second, "the writer serving", func() bool { return r.w.ServingProbe(ctx) == nil })
}

func (r *rig) send(t *testing.T, client *bus.Client, domain, id string, add int64) (bus.Reply, error) {
	t.Helper()
	reply, _, err := client.Send(context.Background(), domain, id, "add",
		bus.Command{CommandID: ksuid.New().String(), Data: fmt.Appendf(nil, `{"Add":%d}`, add)})
	return reply, err
}

// Commands of one stream are decided in the order they arrive, whatever
// else is in their batches: each client's sequence gets versions 1, 2, ...
// in its order, and the log, the state log and Redis agree.
func TestPerStreamOrder(t *testing.T) {
	r := newRig(t)
	r.run(t)
	client := bus.NewClient(r.nc, 5*time.Second, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		domain, id := r.domains[i%2], fmt.Sprintf("s%d", i)
		wg.Go(func() {
			for n := range 12 {
				reply, err := r.send(t, client, domain, id, 1)
				var res map[string]any
				if err == nil && reply.Result != nil {
					err = json.Unmarshal(reply.Result, &res)
				}
				if err != nil || res["version"] != float64(n+1) || res["n"] != float64(n+1) {
					errs <- fmt.Errorf("%s %s command %d: %s %v", domain, id, n, reply.Result, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the read model complete", func() bool {
		ok, _ := r.proj.IsComplete(context.Background(), readmodel.Whole)
		return ok
	})
	if out := r.verify(t); !strings.Contains(out, "verified 4 alphas, 4 betas, 96 events") {
		t.Fatalf("verify: %s", out)
	}
}

// With Redis down, commands are still decided and answered; when Redis
// comes back (empty), the projector writes every stream again from the
// log.
func TestRedisDown(t *testing.T) {
	r := newRig(t)
	r.run(t)
	client := bus.NewClient(r.nc, 5*time.Second, nil)
	if _, err := r.send(t, client, "alpha", "x", 1); err != nil {
		t.Fatal(err)
	}
	r.redis.Stop()
	for i, c := range []struct {
		domain, id string
	}{{"alpha", "x"}, {"beta", "x"}, {"alpha", "y"}} {
		reply, err := r.send(t, client, c.domain, c.id, int64(i+1))
		if err != nil || reply.Error != nil {
			t.Fatalf("%s %s with Redis down: %+v %v", c.domain, c.id, reply.Error, err)
		}
	}
	if st := r.w.Stats(); st.RedisBehind == 0 {
		t.Fatal("no stream is behind in Redis while it is down")
	}
	r.redis.Restart(t)
	proj := readmodel.New(r.redis.Client(t))
	testwait.Until(t, 15*time.Second, "the projector to catch up", func() bool {
		state, err := proj.State(context.Background(), "beta", "x")
		return err == nil && state != nil
	})
	r.proj = proj
	if out := r.verify(t); !strings.Contains(out, "0 problems") {
		t.Fatal(out)
	}
	state, _ := proj.State(context.Background(), "alpha", "x")
	if !strings.Contains(string(state), `"n":2,"version":2`) {
		t.Fatalf("alpha x after the catch-up: %s", state)
	}
}

// Verify finds what is wrong in a toy domain's stream: its own invariant
// broken in the log, and Redis behind.
func TestVerifyFindsProblems(t *testing.T) {
	r := newRig(t)
	r.markComplete(t)
	r.batch(t, r.cmd(t, "alpha", "x", 5, ""), r.cmd(t, "beta", "y", 5, ""), r.cmd(t, "beta", "z", 5, ""))
	if _, err := r.sql(t).Exec(`UPDATE events SET data = '{"add":5,"n":6}' WHERE domain = 'alpha'`); err != nil {
		t.Fatal(err)
	}
	if err := r.redis.Client(t).Del(context.Background(), readmodel.StateKey("beta", "y")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.redis.Client(t).HSet(context.Background(), readmodel.ListKey("beta", "z", "marks"), "last", `{"add":5,"n":50}`, "extra", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Verify(context.Background(), r.ds, readmodel.Whole, r.store, r.proj, &out, time.Now())
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	for _, want := range []string{"MISMATCH alpha x: v1: says 6, the events sum to 5", "MISMATCH beta y: Redis has no state",
		`MISMATCH beta z: Redis marks "last" is "{\"add\":5,\"n\":50}"; the log has {"add":5,"n":5}`,
		`MISMATCH beta z: Redis marks has "extra" (1), which no event set`, ": 4 problems"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verify output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRegisterRefusesBadNames(t *testing.T) {
	var ds Domains
	if err := Register(&ds, tally{"alpha"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpha", "part", "", "Alpha", "a.b", "a*", "1a"} {
		if err := Register(&ds, tally{name}); !errors.Is(err, ErrDomainName) {
			t.Errorf("Register(%q): %v", name, err)
		}
	}
	if got := ds.Names(); len(got) != 1 || got[0] != "alpha" {
		t.Fatalf("names %v", got)
	}
}

// due is a command that schedules a reset of the stream at due.
func (r *rig) due(t *testing.T, domain, id string, due time.Time) cmd {
	t.Helper()
	c := r.cmd(t, domain, id, 1, "")
	h := r.w.hosts[domain]
	dc, perr := h.decode(id, "due", fmt.Appendf(nil, `{"Due":%d}`, due.UnixNano()))
	if perr != nil {
		t.Fatal(perr)
	}
	c.p = newPending(h, id, "due", c.p.wire, dc, c.p.reply, time.Now())
	return c
}

// A stream's alarm: the engine decides the stream's own command when it
// comes due while the writer runs, and at once when the writer starts
// after it came due; verify counts an alarm long past due while no writer
// acted on it. The command's event sets a hash field, which Redis gets.
func TestAlarms(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.markComplete(t)
	r.batch(t, r.cmd(t, "alpha", "x", 5, ""), r.due(t, "alpha", "x", time.Now().Add(-20*time.Second)))
	var out bytes.Buffer
	if err := Verify(ctx, r.ds, readmodel.Whole, r.store, r.proj, &out, time.Now()); !errors.Is(err, ErrMismatch) ||
		!strings.Contains(out.String(), "MISMATCH alpha x: wanted a command of its own at") {
		t.Fatalf("verify with an alarm 20 s past due: %v\n%s", err, out.String())
	}

	r.run(t)
	state := func(domain, id string) string {
		b, _ := r.proj.State(ctx, domain, id)
		return string(b)
	}
	testwait.Until(t, 5*time.Second, "the overdue reset of alpha x", func() bool { return strings.Contains(state("alpha", "x"), `"n":0,"version":3`) })

	client := bus.NewClient(r.nc, 5*time.Second, nil)
	if _, err := r.send(t, client, "beta", "y", 9); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(300 * time.Millisecond)
	reply, _, err := client.Send(ctx, "beta", "y", "due", bus.Command{CommandID: ksuid.New().String(), Data: fmt.Appendf(nil, `{"Due":%d}`, due.UnixNano())})
	if err != nil || reply.Error != nil {
		t.Fatalf("due: %+v %v", reply.Error, err)
	}
	testwait.Until(t, 5*time.Second, "the reset of beta y", func() bool { return strings.Contains(state("beta", "y"), `"n":0,"version":3`) })
	evs := r.events(t, "beta", "y")
	if len(evs) != 3 || evs[0].Event.Type != "added" || evs[1].Event.Type != "scheduled" || evs[2].Event.Type != "reset" {
		t.Fatalf("beta y: %+v", evs)
	}
	if late := evs[2].Event.Time.Sub(due); late < 0 || late > 2*time.Second {
		t.Fatalf("reset %s after it was due", late)
	}
	st, err := r.proj.Inspect(ctx, "beta", "y", []string{"log", "refused"}, []string{"marks"})
	if err != nil || st.Hashes[0]["last"] != `{"add":9,"n":9}` || st.Hashes[0]["reset"] != `{"n":0}` {
		t.Fatalf("beta y's marks: %v %v", st.Hashes, err)
	}
	if r.w.alarms.len() != 0 {
		t.Fatalf("%d alarms left once both came due", r.w.alarms.len())
	}
	if out := r.verify(t); !strings.Contains(out, "0 problems") {
		t.Fatal(out)
	}
}

// A command that refers to an earlier event of its stream (Domain.Refers)
// is decided with that event as the log holds it: the engine reads it
// before queueing the command. An id the stream does not hold — another
// stream's event, or none at all — is given as not found.
func TestCommandsReferToEarlierEvents(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.markComplete(t)
	r.run(t)
	client := bus.NewClient(r.nc, 5*time.Second, nil)
	first, err := r.send(t, client, "alpha", "x", 5)
	if err != nil || first.Error != nil {
		t.Fatalf("add: %+v %v", first.Error, err)
	}
	var added struct{ Event string }
	if err := json.Unmarshal(first.Result, &added); err != nil || added.Event == "" {
		t.Fatalf("add answered %s", first.Result)
	}
	if _, err := r.send(t, client, "alpha", "x", 2); err != nil {
		t.Fatal(err)
	}
	undo := func(domain, id, ref string) bus.Reply {
		t.Helper()
		reply, _, err := client.Send(ctx, domain, id, "undo", bus.Command{CommandID: ksuid.New().String(), Data: fmt.Appendf(nil, `{"Undo":%q}`, ref)})
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	if reply := undo("alpha", "x", added.Event); reply.Error != nil || !strings.Contains(string(reply.Result), `"n":2`) {
		t.Fatalf("undo of the 5: %s %+v", reply.Result, reply.Error)
	}
	for _, c := range []struct{ domain, id, ref string }{
		{"alpha", "y", added.Event}, // another stream's event
		{"beta", "x", added.Event},  // another domain's
		{"alpha", "x", ksuid.New().String()},
	} {
		if reply := undo(c.domain, c.id, c.ref); reply.Error == nil || reply.Error.Code != bus.CodeNotFound {
			t.Errorf("undo of %s on %s %s: %s %+v", c.ref, c.domain, c.id, reply.Result, reply.Error)
		}
	}
	if evs := r.events(t, "alpha", "x"); len(evs) != 3 {
		t.Fatalf("alpha x has %d events, want 3", len(evs))
	}
}

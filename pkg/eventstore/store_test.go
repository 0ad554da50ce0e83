package eventstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/wallet"
)

func open(t *testing.T, path string) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), path, eventstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)

// credit returns the record of crediting amount to a wallet at state st.
func credit(t testing.TB, walletID string, st wallet.State, amount int64, key string) (eventstore.Record, wallet.State) {
	t.Helper()
	e, err := wallet.Decide(st, wallet.Command{Action: wallet.Credit, Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	data, err := wallet.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	next := wallet.Evolve(st, e)
	return eventstore.Record{
		Event: event.Envelope{
			ID: ksuid.New().String(), Domain: wallet.Name, StreamID: walletID, Version: e.Version,
			Type: string(e.Type), Schema: wallet.SchemaVersion, Data: data, Time: t0, CommandID: ksuid.New().String(),
		},
		State:   wallet.Domain{}.EncodeState(next),
		IdemKey: key,
		Request: fmt.Sprintf("credit:%d", amount),
	}, next
}

func count(t *testing.T, s *eventstore.Store) int {
	t.Helper()
	evs, err := s.EventsAfter(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestBatchCommitsAtomically(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	a, b := ksuid.New().String(), ksuid.New().String()

	r1, sa := credit(t, a, wallet.State{}, 5, "k:1")
	r2, _ := credit(t, b, wallet.State{}, 7, "c:1")
	if err := s.Append(ctx, []eventstore.Record{r1, r2}); err != nil {
		t.Fatal(err)
	}

	// A batch whose last record conflicts stores none of its records.
	r3, _ := credit(t, a, sa, 1, "k:2")
	r4, _ := credit(t, b, wallet.State{}, 9, "c:2") // version 1 of b is taken
	err := s.Append(ctx, []eventstore.Record{r3, r4})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("conflicting batch: %v, want ErrVersionConflict", err)
	}
	if n := count(t, s); n != 2 {
		t.Fatalf("%d events after a failed batch, want 2", n)
	}
	h, err := s.Head(ctx, wallet.Name, a)
	if err != nil || h.Version != 1 || string(h.State) != `{"balance":5}` {
		t.Fatalf("head of a after the failed batch: %+v %v", h, err)
	}
	if known, err := s.Lookup(ctx, []eventstore.Key{{Domain: wallet.Name, StreamID: a, IdemKey: "k:2"}}); len(known) != 0 || err != nil {
		t.Fatalf("idempotency record of the failed batch is stored: %v (%v)", known, err)
	}
	// The failed batch took no seq: the next one continues the numbering.
	again := []eventstore.Record{r3}
	if err := s.Append(ctx, again); err != nil || again[0].Event.Seq != 3 {
		t.Fatalf("append after a failed batch: seq %d, %v", again[0].Event.Seq, err)
	}
}

func TestDuplicateVersionIsATypedConflict(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	id := ksuid.New().String()
	r1, _ := credit(t, id, wallet.State{}, 5, "c:1")
	r2, _ := credit(t, id, wallet.State{}, 6, "c:2") // also version 1
	if err := s.Append(context.Background(), []eventstore.Record{r1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), []eventstore.Record{r2}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("second version 1: %v, want ErrVersionConflict", err)
	}
}

func TestReopenRestoresState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	s, err := eventstore.Open(ctx, path, eventstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{ksuid.New().String(), ksuid.New().String()}
	want := map[string]wallet.State{}
	var recs []eventstore.Record
	for i, id := range ids {
		var st wallet.State
		for j := range 3 + i {
			var r eventstore.Record
			r, st = credit(t, id, st, int64(10*(j+1)), fmt.Sprintf("k:%d", j))
			recs = append(recs, r)
		}
		want[id] = st
	}
	if err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOutboxWatermark(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	got := map[string]wallet.State{}
	if err := s.Heads(ctx, func(h eventstore.Head) error {
		st, err := wallet.Domain{}.DecodeState(h.Version, h.State)
		if err != nil || h.Domain != wallet.Name {
			t.Errorf("head %+v: %v", h, err)
		}
		got[h.StreamID] = st
		if !h.At.Equal(t0) {
			t.Errorf("head time %v, want %v", h.At, t0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("heads %v, want %v", got, want)
	}
	for id, st := range want {
		if !reflect.DeepEqual(got[id], st) {
			t.Fatalf("wallet %s reopened as %+v, want %+v", id, got[id], st)
		}
	}
	k := eventstore.Key{Domain: wallet.Name, StreamID: ids[1], IdemKey: "k:3"}
	known, err := s.Lookup(ctx, []eventstore.Key{k, {Domain: wallet.Name, StreamID: ids[1], IdemKey: "k:99"}})
	if err != nil || len(known) != 1 || string(known[k].State) != `{"balance":100}` || known[k].Request != "credit:40" ||
		known[k].Event.Version != 4 || string(known[k].Event.Data) != `{"amount":40,"balance_after":100}` {
		t.Fatalf("idempotency record after reopen: %+v %v", known, err)
	}
	if wm, err := s.OutboxWatermark(ctx); err != nil || wm != 4 {
		t.Fatalf("watermark after reopen %d %v, want 4", wm, err)
	}
	evs, err := s.StreamEvents(ctx, wallet.Name, ids[0], 1, 10)
	if err != nil || len(evs) != 2 || evs[0].Event.Version != 2 || evs[1].Event.Version != 3 || string(evs[1].State) != `{"balance":60}` {
		t.Fatalf("events of wallet 0 after version 1: %+v %v", evs, err)
	}
	if !evs[0].Event.Time.Equal(t0) || evs[0].Event.Domain != wallet.Name {
		t.Fatalf("event read back as %+v", evs[0])
	}
	if err := evs[0].Event.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestWatermarkNeverMovesBack(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	for _, seq := range []int64{5, 3, 9, 0} {
		if err := s.SetOutboxWatermark(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if wm, _ := s.OutboxWatermark(ctx); wm != 9 {
		t.Fatalf("watermark %d, want 9", wm)
	}
}

func TestOpenRejectsUnknownSync(t *testing.T) {
	if _, err := eventstore.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), eventstore.Options{Sync: "OFF"}); err == nil {
		t.Fatal("synchronous=OFF accepted")
	}
}

func TestSameKeyTwiceIsAConflict(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "w.db"))
	id := ksuid.New().String()
	r1, st := credit(t, id, wallet.State{}, 5, "k:same")
	r2, _ := credit(t, id, st, 6, "k:same")
	if err := s.Append(context.Background(), []eventstore.Record{r1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), []eventstore.Record{r2}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("second event under one key: %v, want ErrVersionConflict", err)
	}
}

// TestWALStaysSmallUnderContinuousWrites appends without pause while
// checkpoints run beside: each checkpoint must let the WAL start over, or
// the file grows with every commit for as long as writes never stop.
func TestWALStaysSmallUnderContinuousWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	s, err := eventstore.Open(context.Background(), path, eventstore.Options{Sync: eventstore.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, err := s.Checkpoint(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	ids := make([]string, 500)
	states := make([]wallet.State, len(ids))
	for i := range ids {
		ids[i] = ksuid.New().String()
	}
	k := 0
	var largest int64
	for range 400 {
		recs := make([]eventstore.Record, 50)
		for j := range recs {
			w := k % len(ids)
			k++
			recs[j], states[w] = credit(t, ids[w], states[w], 1, "c:"+ksuid.New().String())
		}
		if err := s.Append(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	close(done)
	wg.Wait()
	// 400 commits of 50 events over 500 wallets: a WAL that restarts after
	// each checkpoint stays at a few MB; one that never restarts holds every
	// commit (169 MB when the checkpoint had a connection of its own).
	if largest > 32<<20 {
		t.Fatalf("the WAL grew to %d KiB over 400 commits", largest>>10)
	}
	t.Logf("largest WAL: %d KiB", largest>>10)
}

// A log written as one partition refuses to be opened as another, or under
// another partition count: its wallets would be routed elsewhere.
func TestClaimPartition(t *testing.T) {
	ctx := context.Background()
	s, err := eventstore.Open(ctx, filepath.Join(t.TempDir(), "w.db"), eventstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ClaimPartition(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPartition(ctx, 1, 4); err != nil {
		t.Fatalf("the same claim again: %v", err)
	}
	for _, other := range [][2]int{{1, 2}, {0, 4}, {1, 8}} {
		if err := s.ClaimPartition(ctx, other[0], other[1]); !errors.Is(err, eventstore.ErrOtherPartition) {
			t.Errorf("claim %d/%d of a 1/4 log: %v", other[0], other[1], err)
		}
	}
}

// TestLookupFindsExactlyTheRecordedKeys asks for key sets of sizes around the
// padded statement shapes and the 256-key chunk: every recorded key is found
// with its own event, and no unrecorded one.
func TestLookupFindsExactlyTheRecordedKeys(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "log.db"))
	const wallets = 3
	ids := make([]string, wallets)
	states := make([]wallet.State, wallets)
	for i := range ids {
		ids[i] = ksuid.New().String()
	}
	var recs []eventstore.Record
	for i := range 600 {
		w := i % wallets
		var rec eventstore.Record
		rec, states[w] = credit(t, ids[w], states[w], int64(i+1), fmt.Sprintf("k:%d", i))
		recs = append(recs, rec)
	}
	if err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 7, 64, 65, 255, 256, 257, 513, 900} {
		var keys []eventstore.Key
		for i := range n {
			// Even i: a recorded key (every other one of the 600); odd i:
			// a key never used, or a used key asked of the wrong wallet.
			switch {
			case i%2 == 0:
				j := i % 600
				keys = append(keys, eventstore.Key{Domain: wallet.Name, StreamID: ids[j%wallets], IdemKey: fmt.Sprintf("k:%d", j)})
			case i%4 == 1:
				keys = append(keys, eventstore.Key{Domain: wallet.Name, StreamID: ids[0], IdemKey: fmt.Sprintf("never:%d", i)})
			default:
				j := i % 600
				keys = append(keys, eventstore.Key{Domain: wallet.Name, StreamID: ids[(j+1)%wallets], IdemKey: fmt.Sprintf("k:%d", j)})
			}
		}
		known, err := s.Lookup(ctx, keys)
		if err != nil {
			t.Fatalf("%d keys: %v", n, err)
		}
		want := map[eventstore.Key]bool{}
		for i, k := range keys {
			if i%2 == 0 {
				want[k] = true
			}
		}
		if len(known) != len(want) {
			t.Fatalf("%d keys: found %d, want %d", n, len(known), len(want))
		}
		for k := range want {
			rec, ok := known[k]
			var i int
			fmt.Sscanf(k.IdemKey, "k:%d", &i)
			if !ok || rec.Event.StreamID != k.StreamID || rec.Event.ID != recs[i].Event.ID {
				t.Fatalf("%d keys: %+v found as %+v (%v), want event %s", n, k, rec.Event, ok, recs[i].Event.ID)
			}
		}
	}
}

// TestHeadsAreCurrentWhileTheTableLags: the streams table is brought up to
// date only every HeadsEvery events, yet Heads and Head always give each
// stream's newest state — also to another process reading the file of a
// writer that never closed it (a crash).
func TestHeadsAreCurrentWhileTheTableLags(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	s := open(t, path)
	ids := []string{ksuid.New().String(), ksuid.New().String(), ksuid.New().String()}
	states := make([]wallet.State, len(ids))
	appendTo := func(i, n int) {
		t.Helper()
		recs := make([]eventstore.Record, n)
		for j := range recs {
			recs[j], states[i] = credit(t, ids[i], states[i], 1, ksuid.New().String())
		}
		if err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	table := func() (rows, seq int64) {
		t.Helper()
		if err := raw.QueryRow(`SELECT (SELECT COUNT(*) FROM streams), (SELECT value FROM meta WHERE key = 'heads_seq')`).Scan(&rows, &seq); err != nil {
			t.Fatal(err)
		}
		return rows, seq
	}
	reader, err := eventstore.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	check := func(when string) {
		t.Helper()
		var got []string
		if err := reader.Heads(ctx, func(h eventstore.Head) error {
			got = append(got, fmt.Sprintf("%s %s v%d %s", h.Domain, h.StreamID, h.Version, h.State))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i, id := range ids {
			if states[i].Version > 0 {
				want = append(want, fmt.Sprintf("wallet %s v%d %s", id, states[i].Version, wallet.Domain{}.EncodeState(states[i])))
			}
			h, err := reader.Head(ctx, wallet.Name, id)
			if err != nil || h.Version != states[i].Version {
				t.Errorf("%s: Head of %s: v%d, %v; want v%d", when, id, h.Version, err, states[i].Version)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: heads\n%q\nwant\n%q", when, got, want)
		}
	}

	appendTo(0, 2)
	appendTo(1, 1)
	if rows, seq := table(); rows != 0 || seq != 0 {
		t.Fatalf("the table has %d rows up to seq %d before %d events", rows, seq, eventstore.HeadsEvery)
	}
	check("three events, none in the table")

	appendTo(2, eventstore.HeadsEvery) // takes the log past HeadsEvery: brought up to date
	if rows, seq := table(); rows != 3 || seq != int64(eventstore.HeadsEvery)+3 {
		t.Fatalf("after %d events the table has %d rows up to seq %d", eventstore.HeadsEvery+3, rows, seq)
	}
	check("every head in the table")

	appendTo(0, 1)
	appendTo(1, 2)
	check("two streams ahead of the table") // s is left open: as a writer killed now would leave it

	if err := s.FlushHeads(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, seq := table(); rows != 3 || seq != int64(eventstore.HeadsEvery)+6 {
		t.Fatalf("after FlushHeads the table has %d rows up to seq %d", rows, seq)
	}
	check("flushed")
}

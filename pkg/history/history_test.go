package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/history"
	"coffer/pkg/natstest"
)

func envelope(i int) event.Envelope {
	return event.Envelope{
		ID: ksuid.New().String(), Seq: int64(i), Domain: "wallet", StreamID: ksuid.New().String(), Version: 1,
		Type: "credited", Schema: 1, Data: json.RawMessage(fmt.Sprintf(`{"amount":%d,"balance_after":%d}`, i, i)),
		Time: time.Now().UTC(), CommandID: ksuid.New().String(),
	}
}

// runRecorder records until the returned stop is called.
func runRecorder(t *testing.T, nc *nats.Conn, hl *history.Log) (stop func()) {
	t.Helper()
	rec, err := history.NewRecorder(nc, hl, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func waitCount(t *testing.T, hl *history.Log, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := hl.Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history holds %d events, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every event lands once, even when the stream holds it twice (a republish
// after JetStream's duplicate window) and across a restart of the recorder.
func TestEveryEventOnceAcrossRedeliveryAndRestart(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := bus.EnsureStream(ctx, js, bus.EventsStreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	publish := func(e event.Envelope) {
		t.Helper()
		data, _ := json.Marshal(e)
		// A fresh Nats-Msg-Id each time, as after the duplicate window.
		if _, err := js.Publish(ctx, bus.EventSubject(e.Domain, e.StreamID, e.Type), data, jetstream.WithMsgID(ksuid.New().String())); err != nil {
			t.Fatal(err)
		}
	}
	hl, err := history.Open(ctx, filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()

	stop := runRecorder(t, nc, hl)
	var evs []event.Envelope
	for i := range 40 {
		evs = append(evs, envelope(i+1))
		publish(evs[i])
	}
	for _, e := range evs[:10] {
		publish(e) // the same events again
	}
	// Not an event at all: logged and skipped, never stuck on.
	if _, err := js.Publish(ctx, "evt.wallet.x.credited", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	waitCount(t, hl, 40)
	stop()

	stop = runRecorder(t, nc, hl)
	for _, e := range evs[30:] {
		publish(e)
	}
	more := envelope(41)
	publish(more)
	waitCount(t, hl, 41)

	// The republished events may land after the new one: the recorder
	// is done when its consumer has nothing pending and nothing unacked.
	cons, err := js.Consumer(ctx, bus.EventsStream, history.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		if info, err = cons.Info(ctx); err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer left %d unacked and %d pending after 10s", info.NumAckPending, info.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	waitCount(t, hl, 41) // and no event twice
}

func TestInsertIgnoresKnownEvents(t *testing.T) {
	ctx := context.Background()
	hl, err := history.Open(ctx, filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	batch := []history.Entry{{Event: envelope(1), StreamSeq: 1}, {Event: envelope(2), StreamSeq: 2}}
	if n, err := hl.Insert(ctx, batch, time.Now()); err != nil || n != 2 {
		t.Fatalf("first insert: %d new, %v", n, err)
	}
	batch = append(batch, history.Entry{Event: envelope(3), StreamSeq: 3})
	if n, err := hl.Insert(ctx, batch, time.Now()); err != nil || n != 1 {
		t.Fatalf("second insert: %d new, %v; want 1", n, err)
	}
	if c, _ := hl.Count(ctx); c != 3 {
		t.Fatalf("%d events stored, want 3", c)
	}
}

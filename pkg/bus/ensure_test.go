package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"coffer/pkg/bus"
	"coffer/pkg/natstest"
)

// apiWrites records the JetStream API requests that change a configuration:
// stream updates, and consumer creates sent with an action other than
// "create" (an update, or nats.go's create-or-update).
type apiWrites struct {
	sub *nats.Subscription
}

// recordAPIWrites subscribes to the JetStream API on nc itself, which sees
// its own requests. The subscription is synchronous: once a flush returns,
// every request sent before it is in the subscription's queue, so take
// reads them all without waiting on a callback goroutine.
func recordAPIWrites(t *testing.T, nc *nats.Conn) *apiWrites {
	t.Helper()
	sub, err := nc.SubscribeSync("$JS.API.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &apiWrites{sub: sub}
}

// take returns the writes sent since the last take.
func (w *apiWrites) take(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var calls []string
	for {
		m, err := w.sub.NextMsg(10 * time.Millisecond)
		if errors.Is(err, nats.ErrTimeout) {
			return calls
		}
		if err != nil {
			t.Fatal(err)
		}
		write := strings.HasPrefix(m.Subject, "$JS.API.STREAM.UPDATE.")
		if strings.HasPrefix(m.Subject, "$JS.API.CONSUMER.CREATE.") {
			var req struct {
				Action string `json:"action"`
			}
			write = json.Unmarshal(m.Data, &req) != nil || req.Action != "create"
		}
		if write {
			calls = append(calls, m.Subject)
		}
	}
}

func consumerConfig(maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       "history_writer",
		FilterSubject: bus.EventSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       5 * time.Second,
		MaxAckPending: maxAckPending,
	}
}

func leaseConfig(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: "leases", TTL: ttl, History: 1, Storage: jetstream.FileStorage}
}

// An ensure with the configuration already in place sends no update; one
// with a changed configuration applies it.
func TestEnsureWritesOnlyWhatChanged(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	writes := recordAPIWrites(t, nc)

	ensureAll := func(cfg jetstream.StreamConfig, maxAckPending int, ttl time.Duration) {
		t.Helper()
		if _, err := bus.EnsureStream(ctx, js, cfg); err != nil {
			t.Fatalf("ensure stream: %v", err)
		}
		if _, err := bus.EnsureConsumer(ctx, js, bus.EventsStream, consumerConfig(maxAckPending)); err != nil {
			t.Fatalf("ensure consumer: %v", err)
		}
		if _, err := bus.EnsureKeyValue(ctx, js, leaseConfig(ttl)); err != nil {
			t.Fatalf("ensure bucket: %v", err)
		}
	}
	ensureAll(bus.EventsStreamConfig(1), 400, 2*time.Second)
	if got := writes.take(t, nc); len(got) != 0 {
		t.Fatalf("creating from nothing sent updates: %v", got)
	}
	for range 3 {
		ensureAll(bus.EventsStreamConfig(1), 400, 2*time.Second)
	}
	if got := writes.take(t, nc); len(got) != 0 {
		t.Fatalf("ensuring what is already there sent updates: %v", got)
	}

	changed := bus.EventsStreamConfig(1)
	changed.Description = "changed"
	ensureAll(changed, 800, 3*time.Second)
	if got := writes.take(t, nc); len(got) != 3 {
		t.Fatalf("three changed configurations sent %d updates: %v", len(got), got)
	}
	st, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.CachedInfo().Config.Description; d != "changed" {
		t.Fatalf("stream description %q after the update", d)
	}
	cons, err := js.Consumer(ctx, bus.EventsStream, "history_writer")
	if err != nil {
		t.Fatal(err)
	}
	if n := cons.CachedInfo().Config.MaxAckPending; n != 800 {
		t.Fatalf("consumer MaxAckPending %d after the update", n)
	}
	kv, err := js.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.TTL() != 3*time.Second {
		t.Fatalf("bucket TTL %v after the update", status.TTL())
	}
}

// The suite's start, many times over: wallet_writer's outbox and lease and
// history_writer ensure the same stream at once, and history_writer its
// consumer. Every call succeeds, and under -race (how the suite's tests run)
// nats-server's stream-update race is not reached.
func TestEnsureConcurrentStarts(t *testing.T) {
	for i := range 20 {
		srv := natstest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for k := range 4 {
			js, err := jetstream.New(srv.Connect(t))
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := bus.EnsureStream(ctx, js, bus.EventsStreamConfig(1))
				errs <- err
				switch k {
				case 0, 1:
					_, err = bus.EnsureConsumer(ctx, js, bus.EventsStream, consumerConfig(400))
				case 2:
					_, err = bus.EnsureKeyValue(ctx, js, leaseConfig(2*time.Second))
				}
				errs <- err
			}()
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("start %d: %v", i, err)
			}
		}
		srv.Stop()
	}
}

func TestRetryWaitDoublesThenStaysAtFiveSeconds(t *testing.T) {
	var got []time.Duration
	for d := time.Duration(0); len(got) < 9; {
		d = bus.RetryWait(d)
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 5000, 5000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v", got)
		}
	}
}

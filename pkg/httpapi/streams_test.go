package httpapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"coffer/pkg/bus"
)

// following is a Sender whose event stream is a channel of the test's.
type following struct {
	sent
	events chan bus.Delivered
}

func (f *following) Follow(ctx context.Context, _ []string, _ uint64) (<-chan bus.Delivered, error) {
	out := make(chan bus.Delivered)
	go func() {
		defer close(out)
		for {
			select {
			case d := <-f.events:
				select {
				case out <- d:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// An event stream outlives the server's write timeout, which bounds
// answers, not streams: an event that comes after it still goes out.
func TestStreamsOutliveTheWriteTimeout(t *testing.T) {
	f := &following{events: make(chan bus.Delivered)}
	h := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), noReads{}, f, time.Now, nil, Limits{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/wallet/2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(600 * time.Millisecond) // three write timeouts
	f.events <- bus.Delivered{Seq: 7, Data: []byte(`{"id": "e", "domain": "wallet", "stream_id": "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ",
		"version": 1, "type": "credited", "schema": 1, "data": {}, "time": "2026-12-02T12:00:00Z", "command_id": "c"}`)}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				got <- sc.Text()
				return
			}
		}
		got <- "the stream ended: " + resp.Status
	}()
	select {
	case line := <-got:
		if !strings.HasPrefix(line, `data: {"id":"e","domain":"wallet"`) {
			t.Fatalf("after the write timeout: %s", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after the write timeout")
	}
}

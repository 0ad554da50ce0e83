package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/event"
)

// sse is one event of a text/event-stream as a client parses it.
type sse struct {
	id, event string
	env       event.Envelope
}

// sseStream is an open event stream.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sse
	beats  chan struct{}
}

// openStream GETs base+path with the given Last-Event-ID ("" for none) and
// parses what comes; the stream is closed at the end of the test or by
// close.
func openStream(t *testing.T, base, path, lastID string) (*sseStream, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return nil, resp.StatusCode, []byte(b.String())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	st := &sseStream{resp: resp, cancel: cancel, events: make(chan sse, 10000), beats: make(chan struct{}, 100)}
	t.Cleanup(st.close)
	go func() {
		defer close(st.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.id != "" {
					st.events <- cur
				}
				cur = sse{}
			case line == ": heartbeat":
				select {
				case st.beats <- struct{}{}:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &cur.env); err != nil {
					cur.event = "UNREADABLE " + line
				}
			}
		}
	}()
	return st, http.StatusOK, nil
}

func (st *sseStream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next is the next event, or fails the test after within.
func (st *sseStream) next(t *testing.T, within time.Duration) sse {
	t.Helper()
	select {
	case e, ok := <-st.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return sse{}
}

// ended reports whether the server ended the stream within a while.
func (st *sseStream) ended(within time.Duration) bool {
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-st.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// TestEventStreams follows events over Server-Sent Events as a client
// would: a wallet's events by version, live; resumption by Last-Event-ID
// and by from_version; the global feed with its filters, resumable by
// stream sequence; a transfer's stream ending with it; heartbeats on an
// idle stream; the cap on streams; bad input refused.
func TestEventStreams(t *testing.T) {
	s := startStack(t)
	w := ksuid.New().String()
	st, code, body := openStream(t, s.base, "/wallet/"+w+"/events", "")
	if code != 200 {
		t.Fatalf("open: %d %s", code, body)
	}
	for i := 1; i <= 3; i++ {
		step{"POST", "/wallet/" + w + "/credit", fmt.Sprintf(`{"amount": %d}`, i), nil, 200, ""}.run(t, s)
	}
	step{"POST", "/wallet/" + w + "/debit", `{"amount": 100}`, nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	for i, want := range []string{"credited", "credited", "credited", "debit_rejected"} {
		e := st.next(t, 5*time.Second)
		if e.id != strconv.Itoa(i+1) || e.event != want || e.env.StreamID != w || e.env.Version != int64(i+1) || e.env.Type != want {
			t.Fatalf("event %d: %+v", i+1, e)
		}
	}
	// Resumed after version 2: 3, 4, then live.
	re, _, _ := openStream(t, s.base, "/wallet/"+w+"/events", "2")
	byQuery, _, _ := openStream(t, s.base, "/wallet/"+w+"/events?from_version=3", "")
	step{"POST", "/wallet/" + w + "/credit", `{"amount": 5}`, nil, 200, ""}.run(t, s)
	for _, v := range []string{"3", "4", "5"} {
		if e := re.next(t, 5*time.Second); e.id != v {
			t.Fatalf("resumed after 2: got %s, want %s", e.id, v)
		}
	}
	for _, v := range []string{"4", "5"} {
		if e := byQuery.next(t, 5*time.Second); e.id != v {
			t.Fatalf("from_version=3: got %s, want %s", e.id, v)
		}
	}
	// A client reconnecting to the URL it was opened with resumes after
	// its Last-Event-ID, not the URL's position.
	reconnected, _, _ := openStream(t, s.base, "/wallet/"+w+"/events?from_version=1", "4")
	if e := reconnected.next(t, 5*time.Second); e.id != "5" {
		t.Fatalf("from_version=1 with Last-Event-ID 4: got %s, want 5", e.id)
	}
	// from_seq=now: only what is published from now on.
	live, _, _ := openStream(t, s.base, "/events?domain=wallet&from_seq=now", "")
	step{"POST", "/wallet/" + w + "/credit", `{"amount": 6}`, nil, 200, ""}.run(t, s)
	if e := live.next(t, 5*time.Second); e.env.StreamID != w || e.env.Version != 6 {
		t.Fatalf("from_seq=now: the first event is %+v, want version 6 of %s", e.env, w)
	}

	// The global feed, filtered: credits only, ids the stream sequence.
	feed, _, _ := openStream(t, s.base, "/events?domain=wallet&type=credited", "")
	var seqs []uint64
	for range 4 {
		e := feed.next(t, 5*time.Second)
		n, err := strconv.ParseUint(e.id, 10, 64)
		if err != nil || e.event != "credited" || (len(seqs) > 0 && n <= seqs[len(seqs)-1]) {
			t.Fatalf("feed event %+v after %v", e, seqs)
		}
		seqs = append(seqs, n)
	}
	resumed, _, _ := openStream(t, s.base, "/events?domain=wallet&type=credited", strconv.FormatUint(seqs[1], 10))
	if e := resumed.next(t, 5*time.Second); e.id != strconv.FormatUint(seqs[2], 10) {
		t.Fatalf("the feed resumed after %d: %+v", seqs[1], e)
	}

	// A transfer's stream ends with the transfer.
	u := ksuid.New().String()
	tr := decodeQuiet[struct {
		TransferID string `json:"transfer_id"`
	}](step{"POST", "/transfers", transferBody(w, u, 2, ""), nil, 200, ""}.run(t, s))
	ts, _, _ := openStream(t, s.base, "/transfers/"+tr.TransferID+"/events", "")
	var steps []string
	for range 4 {
		steps = append(steps, ts.next(t, 5*time.Second).event)
	}
	if strings.Join(steps, ",") != "requested,held,credited,completed" || !ts.ended(5*time.Second) {
		t.Fatalf("a transfer's stream: %v, then ended: false", steps)
	}

	// Heartbeats on an idle stream; the cap on streams.
	s.startWith("wallet_server#sse", map[string]string{"SSE_HEARTBEAT": "200ms", "SSE_MAX_STREAMS": "1"})
	small := s.baseURL(s.services["wallet_server#sse"])
	eventually(t, 10*time.Second, "the small server to be ready", func() bool {
		resp, err := http.Get(small + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	idle, _, _ := openStream(t, small, "/wallet/"+ksuid.New().String()+"/events", "")
	select {
	case <-idle.beats:
	case <-time.After(2 * time.Second):
		t.Fatal("no heartbeat on an idle stream within 2s (SSE_HEARTBEAT=200ms)")
	}
	if _, code, body := openStream(t, small, "/events", ""); code != 503 || !strings.Contains(string(body), string(bus.CodeOverloaded)) {
		t.Fatalf("a stream over the cap: %d %s", code, body)
	}
	idle.close()
	eventually(t, 5*time.Second, "a stream once one closed", func() bool {
		st, code, _ := openStream(t, small, "/events", "")
		if st != nil {
			st.close()
		}
		return code == 200
	})

	for _, c := range []step{
		{"GET", "/wallet/nope/events", "", nil, 400, bus.CodeInvalidWalletID},
		{"GET", "/wallet/" + w + "/events?from_version=x", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/wallet/" + w + "/events?since=1", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/events?domain=nope", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/events?type=Credited", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/events?from_seq=-1", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/transfers/nope/events", "", nil, 400, bus.CodeInvalidTransferID},
		{"GET", "/orders/nope/events", "", nil, 400, bus.CodeInvalidOrderID},
		{"POST", "/events", "", nil, 405, bus.CodeMethodNotAllowed},
	} {
		c.run(t, s)
	}
	if _, code, body := openStream(t, s.base, "/wallet/"+w+"/events", "x"); code != 400 {
		t.Fatalf("a bad Last-Event-ID: %d %s", code, body)
	}
}

// TestEventStreamsResumeExactlyOnce: under write load, clients follow a
// wallet's events and the global feed, cutting their connections at
// random points and resuming with the last id they saw; each gets every
// event exactly once, in order.
func TestEventStreamsResumeExactlyOnce(t *testing.T) {
	s := startStack(t)
	w := ksuid.New().String()
	const writes = 1500
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < writes; i += 8 {
				if st, _, b, err := s.request("POST", "/wallet/"+w+"/credit", `{"amount": 1}`, nil); err != nil || st != 200 {
					errs <- fmt.Errorf("credit %d: %d %s %v", i, st, b, err)
					return
				}
			}
		})
	}
	// follow reads path until it has n events, reconnecting after a random
	// number of them (or a random moment) with the last id seen.
	follow := func(path string, n int) ([]sse, int) {
		var got []sse
		last, cuts := "", 0
		for len(got) < n {
			st, code, body := openStream(t, s.base, path, last)
			if code != 200 {
				t.Fatalf("GET %s (Last-Event-ID %q): %d %s", path, last, code, body)
			}
			take, timer := 1+rand.IntN(120), time.After(time.Duration(rand.IntN(300))*time.Millisecond)
		read:
			for range take {
				select {
				case e, ok := <-st.events:
					if !ok {
						break read
					}
					got = append(got, e)
					last = e.id
				case <-timer:
					break read
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: no event within 10s after %d", path, len(got))
				}
			}
			st.close()
			cuts++
		}
		return got, cuts
	}
	var mine, feed []sse
	var cutsMine, cutsFeed int
	var readers sync.WaitGroup
	readers.Go(func() { mine, cutsMine = follow("/wallet/"+w+"/events", writes) })
	readers.Go(func() { feed, cutsFeed = follow("/events?domain=wallet", writes) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	readers.Wait()
	for i, e := range mine[:writes] {
		if e.id != strconv.Itoa(i+1) || e.env.Version != int64(i+1) || e.env.StreamID != w {
			t.Fatalf("the wallet's event %d after %d cuts: id %s, version %d", i+1, cutsMine, e.id, e.env.Version)
		}
	}
	seen := map[string]bool{}
	var prev uint64
	for i, e := range feed[:writes] {
		n, _ := strconv.ParseUint(e.id, 10, 64)
		if n <= prev || seen[e.env.ID] || e.env.Version != int64(i+1) {
			t.Fatalf("feed event %d after %d cuts: seq %d after %d, seen %v, version %d", i+1, cutsFeed, n, prev, seen[e.env.ID], e.env.Version)
		}
		prev, seen[e.env.ID] = n, true
	}
	t.Logf("%d events each way: the wallet's stream cut %d times, the feed %d times; every event once, in order", writes, cutsMine, cutsFeed)
}

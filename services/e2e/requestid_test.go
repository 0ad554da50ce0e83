package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
)

// TestRequestIDTravels follows one request id from the HTTP header through
// the NATS header into both services' logs, the event in the writer's log
// and in the history, and back in the response.
func TestRequestIDTravels(t *testing.T) {
	s := startStack(t)
	w := ksuid.New().String()

	const id = "trace-7f3a-request"
	st, hdr, body := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 7}`, map[string]string{"X-Request-Id": id})
	if st != 200 || hdr.Get("X-Request-Id") != id {
		t.Fatalf("credit: %d, X-Request-Id %q: %s", st, hdr.Get("X-Request-Id"), body)
	}
	want := `"request_id":"` + id + `"`
	for _, name := range []string{"wallet_server", "wallet_writer"} {
		line := s.logs(name).wait(t, want, 5*time.Second)
		if !strings.Contains(line, w) && name == "wallet_writer" {
			t.Errorf("the writer's line for the request does not name the wallet: %s", line)
		}
	}
	if got := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND request_id = ?`, w, id); got != 1 {
		t.Fatalf("events of the wallet with the request id in the writer's log: %d, want 1", got)
	}
	eventually(t, 10*time.Second, "the history has the request id", func() bool {
		return queryInt(t, s.historyDB(), `SELECT COUNT(*) FROM events WHERE stream_id = ? AND request_id = ?`, w, id) == 1
	})

	// Without a header, wallet_server makes one, answers with it, and it
	// travels the same way.
	st, hdr, body = s.do("POST", "/wallet/"+w+"/debit", `{"amount": 2}`, nil)
	made := hdr.Get("X-Request-Id")
	if st != 200 || made == "" {
		t.Fatalf("debit: %d, X-Request-Id %q: %s", st, made, body)
	}
	s.logs("wallet_writer").wait(t, `"request_id":"`+made+`"`, 5*time.Second)
	if got := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND request_id = ?`, w, made); got != 1 {
		t.Fatalf("events with the generated request id: %d, want 1", got)
	}

	// A header that is not a sane id is replaced, not echoed.
	_, hdr, _ = s.do("GET", "/wallet/"+w+"/balance", "", map[string]string{"X-Request-Id": strings.Repeat("x", 200)})
	if got := hdr.Get("X-Request-Id"); got == "" || len(got) > 128 {
		t.Fatalf("an overlong X-Request-Id came back as %q", got)
	}
}

package e2e

import (
	"net/http"
	"sync"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
)

// 1,000 concurrent debits of 1 against a balance of N < 1,000: exactly N
// succeed and the rest are refused for insufficient funds.
func TestThousandDebitsAgainstASmallBalance(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	const n, debits = 337, 1000
	if st, b := post(s, id, "credit", n); st != 200 {
		t.Fatalf("credit: %d %s", st, b)
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range debits {
		wg.Go(func() {
			st, _, body, err := s.request("POST", "/wallet/"+id+"/debit", `{"amount": 1}`, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case st == http.StatusConflict && decodeQuiet[httpapi.Problem](body).Code != bus.CodeInsufficientFunds:
				t.Errorf("409 with %s", body)
			}
			statuses[st]++
		})
	}
	wg.Wait()
	if statuses[200] != n || statuses[409] != debits-n {
		t.Fatalf("statuses %v, want %d × 200 and %d × 409", statuses, n, debits-n)
	}
	_, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
	if r := decode[result](t, body); r.Balance != 0 || r.Version != debits+1 {
		t.Fatalf("after the debits: %s", body)
	}
	db := s.writerDB()
	if got := queryInt(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND type = 'debited'`, id); got != n {
		t.Fatalf("%d debited events, want %d", got, n)
	}
}

// 100 concurrent requests with one Idempotency-Key make one event.
func TestHundredRequestsOneKey(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	hdr := map[string]string{"Idempotency-Key": "one-key"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bodies []string
	for range 100 {
		wg.Go(func() {
			st, _, body, err := s.request("POST", "/wallet/"+id+"/credit", `{"amount": 25}`, hdr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || st != 200 {
				t.Errorf("%d %s %v", st, body, err)
			}
			bodies = append(bodies, string(body))
		})
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("answers differ:\n%s\n%s", b, bodies[0])
		}
	}
	if got := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id); got != 1 {
		t.Fatalf("%d events for one key", got)
	}
	_, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
	if b := decode[result](t, body).Balance; b != 25 {
		t.Fatalf("balance %d, want 25", b)
	}
}

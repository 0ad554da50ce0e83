package e2e

import (
	"bytes"
	"net/http"
	"sync"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
)

func TestIdempotencyKey(t *testing.T) {
	s := startStack(t)
	db := s.writerDB()
	events := func(id string) int64 {
		return queryInt(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id)
	}

	t.Run("same key twice replays the first outcome", func(t *testing.T) {
		id := ksuid.New().String()
		key := map[string]string{"Idempotency-Key": "order-1001"}
		st1, h1, b1 := s.do("POST", "/wallet/"+id+"/credit", `{"amount": 7}`, key)
		st2, h2, b2 := s.do("POST", "/wallet/"+id+"/credit", `{"amount": 7}`, key)
		if st1 != 200 || st2 != 200 || !bytes.Equal(b1, b2) {
			t.Fatalf("first %d %s\nreplay %d %s", st1, b1, st2, b2)
		}
		if h1.Get(httpapi.ReplayedHeader) != "" || h2.Get(httpapi.ReplayedHeader) != "true" {
			t.Fatalf("replay header: first %q, second %q", h1.Get(httpapi.ReplayedHeader), h2.Get(httpapi.ReplayedHeader))
		}
		if n := events(id); n != 1 {
			t.Fatalf("%d events for one keyed credit sent twice", n)
		}
		_, _, bal := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		if b := decode[result](t, bal).Balance; b != 7 {
			t.Fatalf("balance %d, want 7", b)
		}
	})

	t.Run("a rejection is replayed too", func(t *testing.T) {
		id := ksuid.New().String()
		key := map[string]string{"Idempotency-Key": "refund-9"}
		st1, _, b1 := s.do("POST", "/wallet/"+id+"/debit", `{"amount": 3}`, key)
		s.do("POST", "/wallet/"+id+"/credit", `{"amount": 10}`, nil)
		st2, h2, b2 := s.do("POST", "/wallet/"+id+"/debit", `{"amount": 3}`, key)
		if st1 != 409 || st2 != 409 || !bytes.Equal(b1, b2) || h2.Get(httpapi.ReplayedHeader) != "true" {
			t.Fatalf("first %d %s\nreplay %d %s", st1, b1, st2, b2)
		}
		if n := events(id); n != 2 {
			t.Fatalf("%d events, want the rejection and the credit", n)
		}
	})

	t.Run("same key with another request is refused", func(t *testing.T) {
		id := ksuid.New().String()
		key := map[string]string{"Idempotency-Key": "order-1002"}
		if st, _, b := s.do("POST", "/wallet/"+id+"/credit", `{"amount": 7}`, key); st != 200 {
			t.Fatalf("first: %d %s", st, b)
		}
		for _, req := range []struct{ path, body string }{
			{"/credit", `{"amount": 8}`},
			{"/debit", `{"amount": 7}`},
		} {
			st, _, b := s.do("POST", "/wallet/"+id+req.path, req.body, key)
			if st != http.StatusUnprocessableEntity || decode[httpapi.Problem](t, b).Code != bus.CodeIdempotencyKeyReused {
				t.Fatalf("%s %s with a used key: %d %s", req.path, req.body, st, b)
			}
		}
		if n := events(id); n != 1 {
			t.Fatalf("%d events, want 1", n)
		}
	})

	t.Run("20 concurrent requests with one key make one event", func(t *testing.T) {
		id := ksuid.New().String()
		key := map[string]string{"Idempotency-Key": "burst-" + id}
		const n = 20
		bodies := make([][]byte, n)
		statuses := make([]int, n)
		replays := make([]bool, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				st, h, b, err := s.request("POST", "/wallet/"+id+"/credit", `{"amount": 11}`, key)
				if err != nil {
					b = []byte(err.Error())
				}
				statuses[i], bodies[i], replays[i] = st, b, h.Get(httpapi.ReplayedHeader) == "true"
			})
		}
		wg.Wait()
		fresh := 0
		for i := range n {
			if statuses[i] != 200 || !bytes.Equal(bodies[i], bodies[0]) {
				t.Fatalf("request %d: %d %s, request 0: %s", i, statuses[i], bodies[i], bodies[0])
			}
			if !replays[i] {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d answers were not replays, want exactly 1", fresh)
		}
		if c := events(id); c != 1 {
			t.Fatalf("%d events, want 1", c)
		}
		_, _, bal := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		if b := decode[result](t, bal).Balance; b != 11 {
			t.Fatalf("balance %d, want 11", b)
		}
	})

	t.Run("keys are scoped to a wallet", func(t *testing.T) {
		key := map[string]string{"Idempotency-Key": "shared-key"}
		a, b := ksuid.New().String(), ksuid.New().String()
		s.do("POST", "/wallet/"+a+"/credit", `{"amount": 1}`, key)
		st, h, body := s.do("POST", "/wallet/"+b+"/credit", `{"amount": 1}`, key)
		if st != 200 || h.Get(httpapi.ReplayedHeader) != "" || decode[result](t, body).WalletID != b {
			t.Fatalf("same key on another wallet: %d %s", st, body)
		}
	})
}

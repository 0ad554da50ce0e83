package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
)

// 50 clients × 40 credits and debits over 10 wallets: every final balance
// equals the sum of the acknowledged operations, in Redis and in SQLite, and
// no balance is ever negative.
func TestConcurrentClientsConserveMoney(t *testing.T) {
	s := startStack(t)
	const clients, perClient, wallets = 50, 40, 10
	ids := make([]string, wallets)
	for i := range ids {
		ids[i] = ksuid.New().String()
	}

	var mu sync.Mutex
	acked := make(map[string]int64)
	var rejected, applied int
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range perClient {
				id := ids[rng.IntN(wallets)]
				amount := int64(1 + rng.IntN(20))
				action := "credit"
				if rng.IntN(5) < 2 {
					action = "debit"
				}
				st, body := post(s, id, action, amount)
				switch {
				case st == http.StatusOK:
					r := decodeQuiet[result](body)
					if r.Balance < 0 || r.Transaction.BalanceAfter != r.Balance {
						errs <- fmt.Errorf("answer with a negative or inconsistent balance: %s", body)
						return
					}
					mu.Lock()
					if action == "credit" {
						acked[id] += amount
					} else {
						acked[id] -= amount
					}
					applied++
					mu.Unlock()
				case st == http.StatusConflict && decodeQuiet[httpapi.Problem](body).Code == bus.CodeInsufficientFunds && action == "debit":
					mu.Lock()
					rejected++
					mu.Unlock()
				default:
					errs <- fmt.Errorf("%s %d: %d %s", action, amount, st, body)
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
	if applied+rejected != clients*perClient {
		t.Fatalf("%d applied + %d rejected != %d sent", applied, rejected, clients*perClient)
	}
	t.Logf("%d applied, %d rejected for insufficient funds", applied, rejected)

	db := s.writerDB()
	for _, id := range ids {
		st, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		if got := decode[result](t, body).Balance; st != 200 || got != acked[id] {
			t.Errorf("wallet %s: API (Redis) balance %d, acknowledged sum %d", id, got, acked[id])
		}
		if got := queryInt(t, db, `SELECT json_extract(state, '$.balance') FROM events WHERE domain = 'wallet' AND stream_id = ? ORDER BY version DESC LIMIT 1`, id); got != acked[id] {
			t.Errorf("wallet %s: SQLite balance %d, acknowledged sum %d", id, got, acked[id])
		}
		sum := queryInt(t, db, `SELECT COALESCE(SUM(CASE type WHEN 'credited' THEN json_extract(data, '$.amount')
			WHEN 'debited' THEN -json_extract(data, '$.amount') ELSE 0 END), 0) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id)
		if sum != acked[id] {
			t.Errorf("wallet %s: events sum to %d, acknowledged sum %d", id, sum, acked[id])
		}
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM states WHERE json_extract(state, '$.balance') < 0`); n != 0 {
		t.Fatalf("%d states with a negative balance", n)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM events`); n != clients*perClient {
		t.Fatalf("event log holds %d events for %d commands", n, clients*perClient)
	}
	hdb := s.historyDB()
	eventually(t, 15*time.Second, "history complete", func() bool {
		return queryInt(t, hdb, `SELECT COUNT(*) FROM events`) == clients*perClient
	})
}

// post is safe in any goroutine: a transport failure comes back as status 0.
func post(s *stack, id, action string, amount int64) (int, []byte) {
	st, _, body, err := s.request("POST", "/wallet/"+id+"/"+action, fmt.Sprintf(`{"amount": %d}`, amount), nil)
	if err != nil {
		return 0, []byte(err.Error())
	}
	return st, body
}

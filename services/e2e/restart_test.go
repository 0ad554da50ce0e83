package e2e

import (
	"testing"
	"time"

	"github.com/segmentio/ksuid"
)

func TestWriterRestart(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	for i := 1; i <= 5; i++ {
		if st, b := post(s, id, "credit", int64(i)); st != 200 {
			t.Fatalf("credit: %d %s", st, b)
		}
	}
	balance := func() result {
		_, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		return decode[result](t, body)
	}

	t.Run("state survives a restart", func(t *testing.T) {
		s.stop("wallet_writer")
		s.start("wallet_writer")
		s.waitReady()
		st, body := post(s, id, "debit", 15)
		r := decode[result](t, body)
		if st != 200 || r.Balance != 0 || r.Version != 6 {
			t.Fatalf("debit of everything after restart: %d %s", st, body)
		}
	})

	t.Run("redis is re-pushed after FLUSHALL and a restart", func(t *testing.T) {
		s.stop("wallet_writer")
		if err := s.redis.Client(t).FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		st, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		if st != 503 || decode[problemBody](t, body).Code != "read_model_unavailable" {
			t.Fatalf("balance from an erased read model: %d %s (must not pass for an empty wallet)", st, body)
		}
		s.start("wallet_writer")
		eventually(t, 10*time.Second, "balance back in redis", func() bool { return balance().Version == 6 })
		_, _, body = s.do("GET", "/wallet/"+id+"/transactions", "", nil)
		page := decode[txPage](t, body)
		if len(page.Transactions) != 6 || page.Transactions[0].Version != 6 || page.Transactions[5].Version != 1 {
			t.Fatalf("transactions after re-push: %s", body)
		}
	})

	t.Run("a FLUSHALL heals without a restart and never shows a wrong balance", func(t *testing.T) {
		if err := s.redis.Client(t).FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "balance back in redis", func() bool {
			st, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
			switch r := decode[result](t, body); {
			case st == 200 && r.Version == 6 && r.Balance == 0:
				return true
			case st == 503:
				return false
			default:
				t.Fatalf("while Redis heals: %d %s", st, body)
				return false
			}
		})
	})

	t.Run("outbox publishes what was committed while JetStream was unreachable", func(t *testing.T) {
		db := s.writerDB()
		hdb := s.historyDB()
		eventually(t, 10*time.Second, "history caught up", func() bool {
			return queryInt(t, hdb, `SELECT COUNT(*) FROM events`) == 6
		})
		s.nats.StopJetStream(t)
		other := ksuid.New().String()
		for i := range 10 {
			if st, b := post(s, other, "credit", int64(i+1)); st != 200 {
				t.Fatalf("credit while JetStream is down: %d %s", st, b)
			}
		}
		last := queryInt(t, db, `SELECT MAX(seq) FROM events`)
		if wm := queryInt(t, db, `SELECT published_seq FROM outbox`); wm >= last {
			t.Fatalf("watermark %d reached %d while JetStream was down", wm, last)
		}
		s.nats.StartJetStream(t)
		eventually(t, 20*time.Second, "outbox watermark at the last event", func() bool {
			return queryInt(t, db, `SELECT published_seq FROM outbox`) == last
		})
		eventually(t, 20*time.Second, "history holds all 16 events", func() bool {
			return queryInt(t, hdb, `SELECT COUNT(*) FROM events`) == 16
		})
		if n := queryInt(t, hdb, `SELECT COUNT(DISTINCT event_id) FROM events WHERE stream_id = ?`, other); n != 10 {
			t.Fatalf("history has %d distinct events of the second wallet, want 10", n)
		}
	})
}

// While Redis is down, writes still commit and answer; when it comes back
// empty, the writer re-projects every wallet without being restarted.
func TestRedisOutage(t *testing.T) {
	s := startStack(t)
	before, during := ksuid.New().String(), ksuid.New().String()
	if st, b := post(s, before, "credit", 40); st != 200 {
		t.Fatalf("credit: %d %s", st, b)
	}
	s.redis.Stop()
	if st, b := post(s, during, "credit", 7); st != 200 {
		t.Fatalf("credit while Redis is down: %d %s", st, b)
	}
	if st, _, b := s.do("GET", "/wallet/"+during+"/balance", "", nil); st != 503 || decode[problemBody](t, b).Code != "read_model_unavailable" {
		t.Fatalf("read while Redis is down: %d %s", st, b)
	}
	s.redis.Restart(t) // empty: nothing persisted
	for id, want := range map[string]int64{before: 40, during: 7} {
		eventually(t, 15*time.Second, "wallet back in Redis", func() bool {
			st, _, b := s.do("GET", "/wallet/"+id+"/balance", "", nil)
			return st == 200 && decode[result](t, b).Balance == want
		})
	}
}

type problemBody struct {
	Code string `json:"code"`
}

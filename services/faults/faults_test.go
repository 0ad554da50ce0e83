package faults

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/ksuid"
)

// kill -9 of wallet_writer at random moments under load, again and again.
func TestWriterKill9UnderLoad(t *testing.T) {
	c := newCluster(t, nil)
	l := startLoad(c, 8, 20)
	var worst, total time.Duration
	for i := range *cycles {
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		killed := time.Now()
		c.kill("wallet_writer", syscall.SIGKILL)
		c.start("wallet_writer")
		took := l.waitProgress(t, killed, 60*time.Second)
		total += took
		worst = max(worst, took)
		if (i+1)%50 == 0 {
			t.Logf("%d kill -9 cycles so far", i+1)
		}
	}
	ops := l.finish(t)
	t.Logf("wallet_writer kill -9 × %d: recovered (first definite answer after the kill) in %s on average, %s at worst; %d retries of 503/504/errors",
		*cycles, total/time.Duration(*cycles), worst, l.transient.Load())
	checkInvariants(t, c, ops)
}

// kill -9 of history_writer: it resumes from its durable consumer and ends
// with every event exactly once.
func TestHistoryKill9UnderLoad(t *testing.T) {
	c := newCluster(t, nil)
	l := startLoad(c, 8, 20)
	for range 3 {
		time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
		c.kill("history_writer", syscall.SIGKILL)
		time.Sleep(200 * time.Millisecond)
		c.start("history_writer")
	}
	ops := l.finish(t)
	start := time.Now()
	checkInvariants(t, c, ops)
	t.Logf("history_writer kill -9 × 3: history complete %s after the load stopped", time.Since(start).Round(time.Millisecond))
}

// kill -9 of nats-server: JetStream restarts from its store, our services
// reconnect by themselves, and nothing is lost.
func TestNATSKill9UnderLoad(t *testing.T) {
	c := newCluster(t, nil)
	l := startLoad(c, 8, 20)
	time.Sleep(time.Second)
	c.kill("nats-server", syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	restarted := time.Now()
	c.start("nats-server")
	took := l.waitProgress(t, restarted, 60*time.Second)
	t.Logf("nats-server kill -9: first definite answer %s after it restarted", took.Round(time.Millisecond))
	time.Sleep(time.Second)
	ops := l.finish(t)
	checkInvariants(t, c, ops)
}

// kill -9 of redis-server (it comes back empty), then a FLUSHALL: the writer
// re-projects everything without a restart, and no read is ever wrong.
func TestRedisKill9AndFlushAll(t *testing.T) {
	c := newCluster(t, nil)
	l := startLoad(c, 8, 20)
	time.Sleep(time.Second)

	c.kill("redis-server", syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	c.start("redis-server")
	restarted := time.Now()
	eventually(t, 30*time.Second, "the read model complete again", func() bool { return readable(c, l.wallets[0]) })
	t.Logf("redis-server kill -9: read model complete %s after Redis restarted empty", time.Since(restarted).Round(time.Millisecond))

	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", c.ports["redis"])})
	defer rdb.Close()
	flushed := time.Now()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the read model complete again", func() bool { return readable(c, l.wallets[0]) })
	t.Logf("FLUSHALL: read model complete %s later", time.Since(flushed).Round(time.Millisecond))
	ops := l.finish(t)
	checkInvariants(t, c, ops)
}

// readable reports whether a balance read is answered (not 503).
func readable(c *cluster, wallet string) bool {
	st, _, _, err := request(c.base(), "GET", "/wallet/"+wallet+"/balance", "", nil)
	return err == nil && st == 200
}

// holdSQLite runs a sqlite3 shell on the writer's log that starts a
// transaction with begin, waits until it holds it, and ends it after d.
func holdSQLite(t *testing.T, c *cluster, begin string, d time.Duration) <-chan struct{} {
	t.Helper()
	cmd := exec.Command("sqlite3", filepath.Join(c.dir, "wallet_writer-p0.db"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, ".timeout 10000\n%s\nSELECT 'holding';\n", begin)
	held := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "holding" {
				held <- sc.Text()
				return
			}
		}
		held <- ""
	}()
	select {
	case h := <-held:
		if h == "" {
			t.Fatal("sqlite3 did not take the lock")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sqlite3 did not take the lock within 15s")
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(d)
		fmt.Fprint(stdin, "COMMIT;\n.quit\n")
		stdin.Close()
		cmd.Wait() //nolint:errcheck // it only held a lock
		close(released)
	}()
	return released
}

// Another process holding the SQLite file: an open read transaction blocks
// nothing; a held write lock makes writes fail with a clear 503 while reads
// go on, and the writer recovers by itself when the lock is released.
func TestSQLiteHeldByAnotherProcess(t *testing.T) {
	c := newCluster(t, nil)
	hold := 10 * time.Second
	if testing.Short() {
		hold = 3 * time.Second
	}

	t.Run("read transaction", func(t *testing.T) {
		l := startLoad(c, 4, 10)
		before := l.transient.Load()
		released := holdSQLite(t, c, "BEGIN; SELECT COUNT(*) FROM events;", hold)
		mid := l.resolved()
		<-released
		ops := l.finish(t)
		if l.transient.Load() != before {
			t.Fatalf("%d writes failed while another process only read", l.transient.Load()-before)
		}
		if len(ops) <= mid {
			t.Fatal("no write completed while another process held a read transaction")
		}
		checkInvariants(t, c, ops)
	})

	t.Run("write lock", func(t *testing.T) {
		id := ksuid.New().String()
		if st, _, b, err := request(c.base(), "POST", "/wallet/"+id+"/credit", `{"amount": 10}`, nil); err != nil || st != 200 {
			t.Fatalf("credit: %d %s %v", st, b, err)
		}
		released := holdSQLite(t, c, "BEGIN IMMEDIATE;", hold)
		start := time.Now()
		st, h, b, err := request(c.base(), "POST", "/wallet/"+id+"/credit", `{"amount": 1}`, map[string]string{"Idempotency-Key": "locked"})
		if err != nil || st != 503 || !strings.Contains(string(b), `"storage_unavailable"`) || h.Get("Retry-After") == "" {
			t.Fatalf("write while the file is locked: %d %s %v", st, b, err)
		}
		t.Logf("write while locked: 503 storage_unavailable after %s", time.Since(start).Round(time.Millisecond))
		if st, _, b, err := request(c.base(), "GET", "/wallet/"+id+"/balance", "", nil); err != nil || st != 200 || !strings.Contains(string(b), `"balance":10`) {
			t.Fatalf("read while the file is locked: %d %s %v", st, b, err)
		}
		<-released
		unlocked := time.Now()
		eventually(t, 10*time.Second, "writes to work again", func() bool {
			st, _, _, err := request(c.base(), "POST", "/wallet/"+id+"/credit", `{"amount": 1}`, map[string]string{"Idempotency-Key": "locked"})
			return err == nil && st == 200
		})
		t.Logf("writes work again %s after the lock was released", time.Since(unlocked).Round(time.Millisecond))
		if st, _, b, _ := request(c.base(), "GET", "/wallet/"+id+"/balance", "", nil); st != 200 || !strings.Contains(string(b), `"balance":11`) {
			t.Fatalf("after the lock: %d %s", st, b)
		}
		if strings.Contains(c.log("wallet_writer"), "within a transaction") {
			t.Fatal("the writer logged a nested-transaction error")
		}
	})
}

// A paused writer: clients get 504 within the deadline, and after SIGCONT
// the retried operation resolves exactly once.
func TestPausedWriter(t *testing.T) {
	c := newCluster(t, map[string]string{"WRITE_TIMEOUT": "1s"})
	id := ksuid.New().String()
	// Pause the writer only once it has marked the read model complete, or
	// reads after the pause answer 503 until it has (a fresh stack's first
	// moments, not what this test is about).
	eventually(t, 10*time.Second, "the read model complete", func() bool { return readable(c, id) })
	c.signal("wallet_writer", syscall.SIGSTOP)
	start := time.Now()
	st, _, b, err := request(c.base(), "POST", "/wallet/"+id+"/credit", `{"amount": 7}`, map[string]string{"Idempotency-Key": "paused"})
	took := time.Since(start)
	if err != nil || st != 504 || !strings.Contains(string(b), `"writer_timeout"`) {
		c.signal("wallet_writer", syscall.SIGCONT)
		t.Fatalf("credit to a paused writer: %d %s %v", st, b, err)
	}
	if took < time.Second || took > 3*time.Second {
		t.Fatalf("504 after %s with WRITE_TIMEOUT=1s", took)
	}
	time.Sleep(2 * time.Second)
	c.signal("wallet_writer", syscall.SIGCONT)
	eventually(t, 15*time.Second, "the retried credit to resolve", func() bool {
		st, _, _, err := request(c.base(), "POST", "/wallet/"+id+"/credit", `{"amount": 7}`, map[string]string{"Idempotency-Key": "paused"})
		return err == nil && st == 200
	})
	db := c.db("wallet_writer-p0.db")
	if n := count(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id); n != 1 {
		t.Fatalf("%d events for one credit sent twice across a pause", n)
	}
	if st, _, b, _ := request(c.base(), "GET", "/wallet/"+id+"/balance", "", nil); st != 200 || !strings.Contains(string(b), `"balance":7`) {
		t.Fatalf("balance after the pause: %d %s", st, b)
	}
}

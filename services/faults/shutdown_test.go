package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
)

// attempt is one request, sent once: what a client saw, and when.
type attempt struct {
	o          op
	action     string
	body       string
	start, end time.Time
	status     int
	err        error
}

// inFlight reports whether the request was under way at t.
func (a attempt) inFlight(t time.Time) bool { return a.start.Before(t) && a.end.After(t) }

// definite reports whether the answer settles the operation: applied (200)
// or refused for funds (409).
func (a attempt) definite() bool { return a.err == nil && (a.status == 200 || a.status == 409) }

// terminate sends SIGTERM and waits for the process to exit; it returns the
// exit code and how long the stop took.
func (c *cluster) terminate(name string) (int, time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	p := c.running[name]
	c.mu.Unlock()
	start := time.Now()
	c.kill(name, syscall.SIGTERM)
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// TestGracefulShutdownUnderLoad sends SIGTERM to wallet_writer, then to
// wallet_server, while clients post credits and debits, each sent once.
// The writer finishes what it took: every command in flight is answered
// (applied, or refused at once with 503 and never applied — never a 504
// for a command left hanging) and it exits 0. wallet_server finishes its
// in-flight requests: each gets its full answer. Afterwards every
// acknowledged operation is in the log exactly once, balances, Redis and
// the history agree.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	c := newCluster(t, nil)
	wallets := make([]string, 20)
	for i := range wallets {
		wallets[i] = ksuid.New().String()
	}
	var mu sync.Mutex
	var attempts []attempt
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := attempt{o: op{key: ksuid.New().String(), wallet: wallets[rng.IntN(len(wallets))]}, action: "credit"}
				amount := int64(1 + rng.IntN(50))
				if rng.IntN(10) < 4 {
					a.action = "debit"
				}
				a.body = fmt.Sprintf(`{"amount": %d}`, amount)
				a.start = time.Now()
				a.status, _, _, a.err = request(c.base(), "POST", "/wallet/"+a.o.wallet+"/"+a.action, a.body, map[string]string{"Idempotency-Key": a.o.key})
				a.end = time.Now()
				a.o.recorded = a.definite() // applied, or refused for funds: either way an event
				if a.err == nil && a.status == 200 {
					a.o.applied = true
					a.o.delta = amount
					if a.action == "debit" {
						a.o.delta = -amount
					}
				}
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				if !a.definite() {
					time.Sleep(20 * time.Millisecond) // part of the stack is down: do not spin
				}
			}
		})
	}

	time.Sleep(time.Second)
	writerTerm := time.Now()
	code, took := c.terminate("wallet_writer")
	if code != 0 {
		t.Errorf("wallet_writer exited %d after SIGTERM", code)
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, "wallet_writer.log"))
	if !strings.Contains(string(b), `"msg":"writer stopped"`) {
		t.Error(`wallet_writer's log has no "writer stopped"`)
	}
	time.Sleep(300 * time.Millisecond) // clients meet a stack without a writer
	c.start("wallet_writer")
	c.waitReady(30 * time.Second)
	time.Sleep(time.Second)

	serverTerm := time.Now()
	serverCode, serverTook := c.terminate("wallet_server")
	if serverCode != 0 {
		t.Errorf("wallet_server exited %d after SIGTERM", serverCode)
	}
	c.start("wallet_server")
	c.waitReady(30 * time.Second)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	var atWriter, atServer, refused int
	for _, a := range attempts {
		switch {
		case a.err == nil && a.status == 504:
			t.Errorf("%s %s: 504, a command left unanswered", a.action, a.o.wallet)
		case a.inFlight(writerTerm):
			atWriter++
			// wallet_server was up: every answer is an HTTP answer, and a
			// 503 is a refusal of a command never taken.
			if a.err != nil || (a.status != 200 && a.status != 409 && a.status != 503) {
				t.Errorf("in flight at the writer's SIGTERM: %s %s: %d %v", a.action, a.o.wallet, a.status, a.err)
			}
		case a.inFlight(serverTerm):
			atServer++
			// A request that found the listener closed never reached any
			// server (the transport's retry of a closed idle connection).
			if !a.definite() && !errors.Is(a.err, syscall.ECONNREFUSED) {
				t.Errorf("in flight at wallet_server's SIGTERM: %s %s: %d %v (want its full answer)", a.action, a.o.wallet, a.status, a.err)
			}
		}
		if a.err == nil && a.status == 503 {
			refused++
		}
	}
	if atWriter == 0 || atServer == 0 {
		t.Fatalf("requests in flight at the signals: %d at the writer's, %d at the server's; the test proves nothing", atWriter, atServer)
	}

	// A 503 means not applied: none of those is in the log.
	db := c.db("wallet_writer-p0.db")
	for _, a := range attempts {
		if a.err == nil && a.status == 503 {
			if n := count(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND idem_key = ?`, a.o.wallet, "k:"+a.o.key); n != 0 {
				t.Fatalf("%s %s was answered 503 and is in the log %d times", a.action, a.o.wallet, n)
			}
		}
	}
	// Settle everything else with the same key, then hold the whole run to
	// the invariants.
	settle := &load{c: c}
	ops := make([]op, 0, len(attempts))
	for _, a := range attempts {
		if !a.definite() {
			if _, msg := settle.resolve(&a.o, "POST", a.action, a.body); msg != "" {
				t.Fatal(msg)
			}
			if a.o.applied {
				a.o.delta = amountOf(a.body)
				if a.action == "debit" {
					a.o.delta = -a.o.delta
				}
			}
		}
		ops = append(ops, a.o)
	}
	t.Logf("SIGTERM under load: wallet_writer stopped in %s with %d requests in flight (%d answered 503 in all, none applied); wallet_server stopped in %s with %d in flight, each answered in full",
		took.Round(time.Millisecond), atWriter, refused, serverTook.Round(time.Millisecond), atServer)
	checkInvariants(t, c, ops)
}

func amountOf(body string) int64 {
	var n int64
	fmt.Sscanf(body, `{"amount": %d}`, &n) //nolint:errcheck // bodies are made above
	return n
}

package faults

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
)

// transferOp is one transfer a client asked for, and what it learned.
type transferOp struct {
	key, id  string
	keyOn    string // the transfer whose log holds key: its own, or for a reversal the original's
	from, to string
	amount   int64
	status   string // completed, failed, or pending (202: resolved later)
	code     string // a failure's
}

// transferLoad runs clients that move money among wallets with transfers,
// and credit and debit them, each operation retried with its
// Idempotency-Key until its answer is definite.
type transferLoad struct {
	c       *cluster
	wallets []string
	funds   int64 // each wallet's first credit
	stop    chan struct{}
	wg      sync.WaitGroup

	// With items: the shop's items, and the orders placed and restocks
	// made among the rest.
	items []*shopItem

	mu        sync.Mutex
	external  []op // credits and debits
	transfers []transferOp
	orders    []orderOp
	failures  []string

	lastOK    atomic.Int64
	transient atomic.Int64
}

func startTransferLoad(t *testing.T, c *cluster, workers, wallets int, funds int64) *transferLoad {
	l := newTransferLoad(t, c, wallets, funds)
	l.run(workers)
	return l
}

// newTransferLoad funds the wallets of a load that has not started.
func newTransferLoad(t *testing.T, c *cluster, wallets int, funds int64) *transferLoad {
	l := &transferLoad{c: c, funds: funds, stop: make(chan struct{})}
	for range wallets {
		l.wallets = append(l.wallets, ksuid.New().String())
	}
	var wg sync.WaitGroup
	for _, w := range l.wallets {
		wg.Go(func() {
			o := op{key: "fund-" + w, wallet: w, delta: funds}
			if _, err := l.resolve(c.base(), "POST", "/wallet/"+w+"/credit", fmt.Sprintf(`{"amount": %d}`, funds), o.key); err != "" {
				l.fail(err)
			}
		})
	}
	wg.Wait()
	if len(l.failures) > 0 {
		t.Fatal(l.failures)
	}
	return l
}

// run starts the load's workers.
func (l *transferLoad) run(workers int) {
	for w := range workers {
		l.wg.Go(func() { l.worker(uint64(w)) })
	}
}

// pause freezes one of the two writer processes for 0.5 to 2 s (SIGSTOP,
// then SIGCONT).
func pause(c *cluster, faults map[string]int) {
	w := []string{"wallet_writer#a", "wallet_writer#b"}[rand.IntN(2)]
	c.signal(w, syscall.SIGSTOP)
	time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
	c.signal(w, syscall.SIGCONT)
	faults["SIGSTOP "+w]++
}

// recovered waits until an operation of the load succeeds after the fault
// made at at, and returns how long after it that was.
func (l *transferLoad) recovered(t *testing.T, faults map[string]int, at time.Time) time.Duration {
	t.Helper()
	eventually(t, 60*time.Second, "an operation to succeed after the fault", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.failures) > 0 {
			t.Fatalf("after %v: %v", faults, l.failures)
		}
		return l.lastOK.Load() > at.UnixNano()
	})
	return time.Unix(0, l.lastOK.Load()).Sub(at)
}

func (l *transferLoad) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, msg)
}

func (l *transferLoad) worker(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		from := l.wallets[rng.IntN(len(l.wallets))]
		if r := rng.IntN(100); r < 20 {
			amount := int64(1 + rng.IntN(100))
			o := op{key: ksuid.New().String(), wallet: from}
			action, delta := "credit", amount
			if r < 8 {
				action, delta = "debit", -amount
			}
			body, err := l.resolve(l.c.base(), "POST", "/wallet/"+from+"/"+action, fmt.Sprintf(`{"amount": %d}`, amount), o.key)
			if err != "" {
				l.fail(err)
				return
			}
			o.recorded = true
			if !strings.Contains(string(body), `"insufficient_funds"`) {
				o.applied, o.delta = true, delta
			}
			l.mu.Lock()
			l.external = append(l.external, o)
			l.mu.Unlock()
			continue
		}
		if len(l.items) > 0 && rng.IntN(100) < 50 {
			if !l.shop(rng, from) {
				return
			}
			continue
		}
		to := l.wallets[rng.IntN(len(l.wallets))]
		for to == from {
			to = l.wallets[rng.IntN(len(l.wallets))]
		}
		tr := transferOp{key: ksuid.New().String(), from: from, to: to, amount: int64(1 + rng.IntN(300))}
		if !l.transfer(&tr, "/transfers", fmt.Sprintf(`{"from": %q, "to": %q, "amount": %d}`, from, to, tr.amount)) {
			return
		}
		if tr.status != "completed" || rng.IntN(8) != 0 {
			continue
		}
		// Now and then a completed transfer is reversed: a transfer of its
		// own the other way, asked for once.
		rev := transferOp{key: ksuid.New().String(), keyOn: tr.id, from: tr.to, to: tr.from, amount: tr.amount}
		if !l.transfer(&rev, "/transfers/"+tr.id+"/reverse", "") {
			return
		}
	}
}

// transfer posts body to path under op's key until the answer is definite,
// and records the transfer it answered with (a failure's, from its
// problem); it reports whether the worker goes on.
func (l *transferLoad) transfer(tr *transferOp, path, body string) bool {
	answer, err := l.resolve(l.c.base(), "POST", path, body, tr.key)
	if err != "" {
		l.fail(err)
		return false
	}
	var problem struct{ Transfer json.RawMessage }
	if json.Unmarshal(answer, &problem) == nil && problem.Transfer != nil {
		answer = problem.Transfer
	}
	var v struct {
		TransferID string `json:"transfer_id"`
		Status     string `json:"status"`
		Code       string `json:"code"`
	}
	if json.Unmarshal(answer, &v) != nil || v.TransferID == "" {
		l.fail(path + " answered " + string(answer))
		return false
	}
	tr.id, tr.status, tr.code = v.TransferID, v.Status, v.Code
	if tr.keyOn == "" {
		tr.keyOn = tr.id // a transfer's own key is in its own log
	}
	l.mu.Lock()
	l.transfers = append(l.transfers, *tr)
	l.mu.Unlock()
	return true
}

// resolve sends a request until its answer is definite (2xx, or a
// transfer's or a debit's refusal) and returns it.
func (l *transferLoad) resolve(base, method, path, body, key string) ([]byte, string) {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, _, b, err := request(base, method, path, body, map[string]string{"Idempotency-Key": key})
		switch {
		case err == nil && (st == 200 || st == 201 || st == 202):
			l.lastOK.Store(time.Now().UnixNano())
			return b, ""
		case err == nil && st == 409 && (strings.Contains(string(b), `"insufficient_funds"`) || strings.Contains(string(b), `"transfer"`) || strings.Contains(string(b), `"order"`)):
			l.lastOK.Store(time.Now().UnixNano())
			return b, ""
		case err != nil || st == 503 || st == 504:
			l.transient.Add(1)
		default:
			return b, fmt.Sprintf("%s %s: %d %s", method, path, st, b)
		}
		if time.Now().After(deadline) {
			return b, fmt.Sprintf("%s %s (key %s) unresolved after 90s: %v %d %s", method, path, key, err, st, b)
		}
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (l *transferLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, f := range l.failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestTransfersUnderFaults moves money among a few hundred wallets with
// concurrent transfers (some of them reversed), credits and debits, across 4 partitions served by
// 2 writer processes (each with its share of the transfers' process
// manager), while kill -9 hits each writer (and so a process manager) and
// nats-server, and SIGSTOP freezes a writer, at random moments. Then every
// transfer ends within a bound this test prints; money is conserved; each
// wallet holds exactly what its acknowledged operations and ended transfers
// say; verify (across the partitions) is clean; history has every event
// once. -cycles sets the number of faults (the long run: 300).
func TestTransfersUnderFaults(t *testing.T) {
	const n = 4
	c := newClusterWith(t, map[string]string{"PARTITION_COUNT": fmt.Sprint(n), "WRITE_TIMEOUT": "2s", "TRANSFER_STEP_TIMEOUT": "2s"}, clusterOpts{
		natsConf: bus.PartitionConfig(n),
		writers: map[string]map[string]string{
			"wallet_writer#a": {"WRITER_PARTITIONS": "0,1"},
			"wallet_writer#b": {"WRITER_PARTITIONS": "2,3"},
		},
		toolEnv: map[string]string{"WRITER_PARTITIONS": "0,1,2,3"},
	})
	l := startTransferLoad(t, c, 12, 300, 300)
	faults := map[string]int{}
	var worst time.Duration
	for i := range *cycles {
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		at := time.Now()
		switch f := rand.IntN(5); f {
		case 0, 1:
			w := []string{"wallet_writer#a", "wallet_writer#b"}[f]
			c.kill(w, syscall.SIGKILL)
			c.start(w)
			faults["kill -9 "+w]++
		case 2:
			c.kill("nats-server", syscall.SIGKILL)
			c.start("nats-server")
			faults["kill -9 nats-server"]++
		default:
			pause(c, faults)
		}
		worst = max(worst, l.recovered(t, faults, at))
		if (i+1)%50 == 0 {
			t.Logf("%d faults so far", i+1)
		}
	}
	l.finish(t)
	end := l.settle(t)
	out, err := c.verify()
	if err != nil || !strings.Contains(out, fmt.Sprintf("%d transfers: %d completed, %d failed, 0 in flight", len(l.transfers), end.tally["completed"], end.tally["failed"])) {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	checkHistory(t, c, end.logs, end.events)
	t.Logf("%d faults %v; the first definite answer after a fault came %s after it at worst; %d retries of 503/504/errors",
		*cycles, faults, worst.Round(time.Millisecond), l.transient.Load())
	reversals := 0
	for _, tr := range l.transfers {
		if tr.keyOn != tr.id {
			reversals++
		}
	}
	t.Logf("%d transfers, %d of them reversals (%d completed, %d failed; answered %v) and %d credits and debits over %d wallets in %d partitions; every transfer ended within %s of the end of the load; money conserved at %d; %d events, each once in the history",
		len(l.transfers), reversals, end.tally["completed"], end.tally["failed"], end.answered, len(l.external), len(l.wallets), n, end.ended.Round(time.Millisecond), end.money, end.events)
}

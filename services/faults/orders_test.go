package faults

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/order"
)

// shopItem is an item of the shop under load: its price never changes;
// restocked counts the units acknowledged restocks added, keys their
// Idempotency-Keys.
type shopItem struct {
	id           string
	price, stock int64
	restocked    int64
	restockKeys  []string
}

// orderOp is one order a client placed, and what it learned.
type orderOp struct {
	key, id string
	wallet  string
	lines   map[string]int64 // item → units
	total   int64
	status  string // completed, failed, or pending (202: resolved later)
}

// addItems puts n items on sale, each with stock units at a price of its
// own.
func (l *transferLoad) addItems(t *testing.T, n int, stock int64) {
	for i := range n {
		it := &shopItem{price: int64(1 + i), stock: stock}
		body, err := l.resolve(l.c.base(), "POST", "/items", fmt.Sprintf(`{"name": "item %d", "price": %d, "stock": %d}`, i, it.price, stock), fmt.Sprintf("item-%d", i))
		var v struct {
			ItemID string `json:"item_id"`
		}
		if err != "" || json.Unmarshal(body, &v) != nil || v.ItemID == "" {
			t.Fatalf("add item %d: %s %s", i, err, body)
		}
		it.id = v.ItemID
		l.items = append(l.items, it)
	}
}

// shop is a worker's turn at the shop: now and then a restock, else an
// order of one to three items; it reports whether the worker goes on.
func (l *transferLoad) shop(rng *rand.Rand, buyer string) bool {
	if rng.IntN(10) == 0 {
		it := l.items[rng.IntN(len(l.items))]
		n, key := int64(1+rng.IntN(20)), ksuid.New().String()
		if _, err := l.resolve(l.c.base(), "POST", "/items/"+it.id+"/restock", fmt.Sprintf(`{"quantity": %d}`, n), key); err != "" {
			l.fail(err)
			return false
		}
		l.mu.Lock()
		it.restocked += n
		it.restockKeys = append(it.restockKeys, key)
		l.mu.Unlock()
		return true
	}
	o := orderOp{key: ksuid.New().String(), wallet: buyer, lines: map[string]int64{}}
	var lines []string
	for _, i := range rng.Perm(len(l.items))[:1+rng.IntN(3)] {
		it, q := l.items[i], int64(1+rng.IntN(3))
		o.lines[it.id] = q
		o.total += q * it.price
		lines = append(lines, fmt.Sprintf(`{"item_id": %q, "quantity": %d}`, it.id, q))
	}
	answer, err := l.resolve(l.c.base(), "POST", "/orders", fmt.Sprintf(`{"wallet_id": %q, "lines": [%s]}`, buyer, strings.Join(lines, ", ")), o.key)
	if err != "" {
		l.fail(err)
		return false
	}
	var problem struct{ Order json.RawMessage }
	if json.Unmarshal(answer, &problem) == nil && problem.Order != nil {
		answer = problem.Order
	}
	var v struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(answer, &v) != nil || v.OrderID == "" {
		l.fail("POST /orders answered " + string(answer))
		return false
	}
	o.id, o.status = v.OrderID, v.Status
	l.mu.Lock()
	l.orders = append(l.orders, o)
	l.mu.Unlock()
	return true
}

// settled is what a load left once every transfer and order ended.
type settled struct {
	tally, answered map[string]int // transfers by final status, and by what their request was answered
	orders          map[string]int // orders by final status
	ended           time.Duration  // from the end of the load to the end of the last transfer or order
	money           int64
	logs            map[string]*sql.DB
	events          int64
}

// settle waits until every transfer and order ends, then checks it all:
// each answer agrees with the end; each wallet holds exactly what its
// acknowledged operations, ended transfers and completed orders say, the
// shop what the completed orders paid; money is conserved; each item sold
// exactly the completed orders' units, holds none reserved and has the
// rest in stock; each request is in the logs once.
func (l *transferLoad) settle(t *testing.T) settled {
	t.Helper()
	c := l.c
	stopped := time.Now()
	final, codes := map[string]string{}, map[string]string{}
	eventually(t, 90*time.Second, "every transfer and order to end", func() bool {
		pending := 0
		look := func(path, id string) {
			if s := final[id]; s == "completed" || s == "failed" {
				return
			}
			st, _, b, err := request(c.base(), "GET", path+id, "", nil)
			var v struct{ Status, Code string }
			if err != nil || st != 200 || json.Unmarshal(b, &v) != nil {
				pending++
				return
			}
			final[id], codes[id] = v.Status, v.Code
			if v.Status == "pending" {
				pending++
			}
		}
		for _, tr := range l.transfers {
			look("/transfers/", tr.id)
		}
		for _, o := range l.orders {
			look("/orders/", o.id)
		}
		return pending == 0
	})
	end := settled{tally: map[string]int{}, answered: map[string]int{}, orders: map[string]int{}, ended: time.Since(stopped)}

	want := map[string]int64{}
	var credits, debits int64
	for _, w := range l.wallets {
		want[w] = l.funds
		credits += l.funds
	}
	for _, o := range l.external {
		want[o.wallet] += o.delta
		if o.delta > 0 {
			credits += o.delta
		} else {
			debits -= o.delta
		}
	}
	for _, tr := range l.transfers {
		s := final[tr.id]
		end.tally[s]++
		end.answered[tr.status]++
		if tr.status != "pending" && tr.status != s {
			t.Fatalf("transfer %s was answered %s, and is %s", tr.id, tr.status, s)
		}
		if s == "failed" && codes[tr.id] != "insufficient_funds" {
			t.Fatalf("transfer %s failed with %q; only insufficient_funds can happen here", tr.id, codes[tr.id])
		}
		if s == "completed" {
			want[tr.from] -= tr.amount
			want[tr.to] += tr.amount
		}
	}
	var paid int64
	sold := map[string]int64{}
	for _, o := range l.orders {
		s := final[o.id]
		end.orders[s]++
		if o.status != "pending" && o.status != s {
			t.Fatalf("order %s was answered %s, and is %s", o.id, o.status, s)
		}
		if s == "failed" && codes[o.id] != string(bus.CodeOutOfStock) && codes[o.id] != string(bus.CodeInsufficientFunds) {
			t.Fatalf("order %s failed with %q; only out_of_stock and insufficient_funds can happen here", o.id, codes[o.id])
		}
		if s == "completed" {
			want[o.wallet] -= o.total
			paid += o.total
			for id, q := range o.lines {
				sold[id] += q
			}
		}
	}
	balance := func(w string) int64 {
		st, _, b, err := request(c.base(), "GET", "/wallet/"+w+"/balance", "", nil)
		var v struct{ Balance, Held int64 }
		if err != nil || st != 200 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("balance of %s: %d %s %v", w, st, b, err)
		}
		if v.Held != 0 {
			t.Fatalf("wallet %s holds %d after every transfer and order ended", w, v.Held)
		}
		return v.Balance
	}
	for _, w := range l.wallets {
		if got := balance(w); got != want[w] || got < 0 {
			t.Fatalf("wallet %s: balance %d; its operations, transfers and orders say %d", w, got, want[w])
		}
		end.money += want[w]
	}
	if len(l.items) > 0 {
		if got := balance(order.DefaultShopWalletID); got != paid {
			t.Fatalf("the shop's wallet holds %d; the completed orders paid %d", got, paid)
		}
		end.money += paid
	}
	if end.money != credits-debits {
		t.Fatalf("money: the balances sum to %d, external credits %d − debits %d = %d", end.money, credits, debits, credits-debits)
	}
	for _, it := range l.items {
		st, _, b, err := request(c.base(), "GET", "/items/"+it.id, "", nil)
		var v struct {
			Stock, Reserved, Sold, Restocked int64
			InitialStock                     int64 `json:"initial_stock"`
		}
		if err != nil || st != 200 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("item %s: %d %s %v", it.id, st, b, err)
		}
		if v.Sold != sold[it.id] || v.Reserved != 0 || v.Restocked != it.restocked || v.InitialStock != it.stock ||
			v.Stock != it.stock+it.restocked-sold[it.id] || v.Stock < 0 {
			t.Fatalf("item %s: %s; the load says %d + %d restocked, %d sold", it.id, b, it.stock, it.restocked, sold[it.id])
		}
	}

	if len(l.items) > 0 { // the listing too, rebuilt with the rest after Redis lost it
		st, _, b, err := request(c.base(), "GET", "/items?limit=1000", "", nil)
		var page struct {
			Items []struct {
				ItemID string `json:"item_id"`
			}
		}
		if err != nil || st != 200 || json.Unmarshal(b, &page) != nil || len(page.Items) != len(l.items) {
			t.Fatalf("GET /items lists %d items, want %d: %d %.300s %v", len(page.Items), len(l.items), st, b, err)
		}
	}

	// Each request is in the logs once; every event is in the history once.
	end.logs = c.logs()
	keys := map[string]int{}
	for _, db := range end.logs {
		for _, k := range column(t, db, `SELECT stream_id || ' ' || idem_key FROM events WHERE idem_key LIKE 'k:%'`) {
			keys[k]++
		}
		end.events += count(t, db, `SELECT COUNT(*) FROM events`)
	}
	once := func(what, stream, key string) {
		if n := keys[stream+" k:"+key]; n != 1 {
			t.Fatalf("%s (key %s on %s) is in the logs %d times", what, key, stream, n)
		}
	}
	for _, o := range l.external {
		once("operation", o.wallet, o.key)
	}
	for _, tr := range l.transfers {
		once("transfer "+tr.id, tr.keyOn, tr.key)
	}
	for _, o := range l.orders {
		once("order "+o.id, o.id, o.key)
	}
	for _, it := range l.items {
		for _, k := range it.restockKeys {
			once("restock", it.id, k)
		}
	}
	return end
}

// TestOrdersUnderFaults runs the shop under load — orders of one to three
// of 20 items placed by a few hundred wallets, restocks, transfers and
// credits and debits among them — across 4 partitions served by 2 writer
// processes (each with its share of both process managers), while kill -9
// hits every kind of process in turn (each writer, nats-server, Redis,
// history_writer, wallet_server) and SIGSTOP freezes a writer, at random
// moments. Then every order and transfer ends; each answer agrees with the
// end; units are conserved on every item (initial + restocked = stock +
// sold, none left reserved, sold = what completed orders bought); money is
// conserved (the shop holds what completed orders paid); verify is clean;
// history has every event once. -cycles sets the number of faults.
func TestOrdersUnderFaults(t *testing.T) {
	const n = 4
	c := newClusterWith(t, map[string]string{"PARTITION_COUNT": fmt.Sprint(n), "WRITE_TIMEOUT": "2s",
		"TRANSFER_STEP_TIMEOUT": "2s", "ORDER_STEP_TIMEOUT": "2s"}, clusterOpts{
		natsConf: bus.PartitionConfig(n),
		writers: map[string]map[string]string{
			"wallet_writer#a": {"WRITER_PARTITIONS": "0,1"},
			"wallet_writer#b": {"WRITER_PARTITIONS": "2,3"},
		},
		toolEnv: map[string]string{"WRITER_PARTITIONS": "0,1,2,3"},
	})
	l := newTransferLoad(t, c, 200, 2000)
	l.addItems(t, 20, 40)
	l.run(12)
	kinds := []string{"wallet_writer#a", "wallet_writer#b", "nats-server", "redis-server", "history_writer", "wallet_server"}
	faults := map[string]int{}
	var worst time.Duration
	for i := range max(*cycles, len(kinds)+1) {
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		at := time.Now()
		// Every kind is killed once first, then at random.
		k := rand.IntN(len(kinds) + 1)
		if i < len(kinds)+1 {
			k = i
		}
		if k < len(kinds) {
			c.kill(kinds[k], syscall.SIGKILL)
			c.start(kinds[k])
			faults["kill -9 "+kinds[k]]++
		} else {
			pause(c, faults)
		}
		worst = max(worst, l.recovered(t, faults, at))
	}
	l.finish(t)
	end := l.settle(t)
	out, err := c.verify()
	wantOrders := fmt.Sprintf("%d orders: %d completed, %d failed, 0 pending", len(l.orders), end.orders["completed"], end.orders["failed"])
	if err != nil || !strings.Contains(out, wantOrders) || !strings.Contains(out, "0 in flight") {
		t.Fatalf("verify: %v\n%s\nwant %q", err, out, wantOrders)
	}
	checkHistory(t, c, end.logs, end.events)
	var fs []string
	for f, n := range faults {
		fs = append(fs, fmt.Sprintf("%s ×%d", f, n))
	}
	sort.Strings(fs)
	t.Logf("faults: %s; the first definite answer after a fault came %s after it at worst; %d retries of 503/504/errors",
		strings.Join(fs, ", "), worst.Round(time.Millisecond), l.transient.Load())
	t.Logf("%d orders (%v) over %d items, %d transfers (%v), %d credits and debits over %d wallets in %d partitions; all ended within %s of the end of the load; units and money (%d) conserved; %d events, each once in the history",
		len(l.orders), end.orders, len(l.items), len(l.transfers), end.tally, len(l.external), len(l.wallets), n, end.ended.Round(time.Millisecond), end.money, end.events)
}

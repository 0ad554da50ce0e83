package readmodel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/ksuid"

	"coffer/pkg/readmodel"
	"coffer/pkg/redistest"
	"coffer/pkg/wallet"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// The read model knows no domain; these tests store wallets in it, as the
// writer does, through the wallet domain's own view and list entries.
var wallets wallet.Domain

// change is the change that records e, taking a wallet to st at at.
func change(id string, e wallet.Event, st wallet.State, at time.Time) readmodel.Change {
	list, member, _ := wallets.ListEntry(id, e, ksuid.New().String(), at)
	return readmodel.Change{Domain: wallet.Name, ID: id, Lists: wallets.Lists(), Hashes: wallets.Hashes(), From: e.Version, Version: st.Version,
		State: wallets.View(id, st, at), Entries: []readmodel.Entry{{List: list, Version: e.Version, Member: member}}}
}

// history makes the changes of n credits of 1 on one wallet, one change each.
func history(id string, n int) []readmodel.Change {
	var out []readmodel.Change
	var st wallet.State
	for i := 0; i < n; i++ {
		e, _ := wallet.Decide(st, wallet.Command{Action: wallet.Credit, Amount: 1})
		st = wallet.Evolve(st, e)
		out = append(out, change(id, e, st, t0.Add(time.Duration(i)*time.Second)))
	}
	return out
}

// balance reads a wallet's view as wallet_server does.
func balance(p *readmodel.Projection, ctx context.Context, id string) (wallet.View, error) {
	state, err := p.State(ctx, wallet.Name, id)
	if err != nil || state == nil {
		return wallet.View{WalletID: id}, err
	}
	return wallet.DecodeView(state)
}

// txPage is a page of a wallet's transactions.
type txPage struct {
	Transactions []wallet.Transaction
	Next         int64
}

// transactions reads a page of a wallet's transactions as wallet_server does.
func transactions(p *readmodel.Projection, ctx context.Context, id string, before int64, limit int, withRejected bool) (txPage, error) {
	lists := []string{wallet.ListTransactions}
	if withRejected {
		lists = append(lists, wallet.ListRejected)
	}
	page, err := p.List(ctx, wallet.Name, id, lists, before, limit)
	if err != nil {
		return txPage{}, err
	}
	out := txPage{Transactions: make([]wallet.Transaction, len(page.Members))}
	for i, m := range page.Members {
		if err := json.Unmarshal(m, &out.Transactions[i]); err != nil {
			return txPage{}, err
		}
	}
	if page.More {
		out.Next = out.Transactions[len(out.Transactions)-1].Version
	}
	return out, nil
}

// complete returns a projection over a fresh Redis marked complete, as the
// writer leaves it once it has projected its whole log.
func complete(t testing.TB) (*readmodel.Projection, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	p := readmodel.New(rs.Client(t))
	if err := p.BeginRebuild(context.Background(), readmodel.Whole, "t"); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.FinishRebuild(context.Background(), readmodel.Whole, "t"); !ok || err != nil {
		t.Fatalf("FinishRebuild: %v %v", ok, err)
	}
	return p, rs
}

func TestPushNeverMovesBackwards(t *testing.T) {
	ctx := context.Background()
	p, _ := complete(t)
	id := ksuid.New().String()
	h := history(id, 3)

	for _, c := range []readmodel.Change{h[0], h[1], h[2], h[1], h[0]} { // late and repeated pushes
		if gaps, err := p.Push(ctx, []readmodel.Change{c}); err != nil || gaps != nil {
			t.Fatalf("push v%d: gaps %v, %v", c.Version, gaps, err)
		}
	}
	v, err := balance(p, ctx, id)
	if err != nil || v.Version != 3 || v.Balance != 3 || !v.UpdatedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("balance after out-of-order pushes: %+v %v", v, err)
	}
	page, err := transactions(p, ctx, id, 0, 10, false)
	if err != nil || len(page.Transactions) != 3 {
		t.Fatalf("transactions after repeated pushes: %+v %v", page, err)
	}
	for i, tx := range page.Transactions {
		if tx.Version != int64(3-i) {
			t.Fatalf("transaction %d has version %d: %+v", i, tx.Version, page.Transactions)
		}
	}
}

// A push that does not continue what Redis holds (after a FLUSHALL, say)
// changes nothing and names the wallet, so that the state key never claims
// a version whose history is missing.
func TestPushRefusesAGap(t *testing.T) {
	ctx := context.Background()
	p, _ := complete(t)
	id, other := ksuid.New().String(), ksuid.New().String()
	h := history(id, 3)
	gaps, err := p.Push(ctx, []readmodel.Change{h[2], history(other, 1)[0]})
	if err != nil || len(gaps) != 1 || gaps[0] != 0 {
		t.Fatalf("push of v3 onto nothing: gaps %v, %v", gaps, err)
	}
	if st, err := p.Inspect(ctx, wallet.Name, id, wallets.Lists(), wallets.Hashes()); err != nil || st.State != nil || len(st.Lists[0])+len(st.Lists[1]) != 0 {
		t.Fatalf("a refused push left %+v (%v)", st, err)
	}
	if st, _ := p.Inspect(ctx, wallet.Name, other, wallets.Lists(), wallets.Hashes()); st.State == nil || len(st.Lists[0]) != 1 || st.Versions[0][0] != 1 {
		t.Fatalf("the other wallet of the pipeline: %+v", st)
	}
	if gaps, err := p.Push(ctx, h[:2]); err != nil || gaps != nil {
		t.Fatalf("push of v1, v2: %v %v", gaps, err)
	}
	if gaps, err := p.Push(ctx, h[2:]); err != nil || gaps != nil {
		t.Fatalf("push of v3 after v2: %v %v", gaps, err)
	}
}

func TestUnknownWalletIsEmpty(t *testing.T) {
	p, _ := complete(t)
	id := ksuid.New().String()
	v, err := balance(p, context.Background(), id)
	if err != nil || !reflect.DeepEqual(v, wallet.View{WalletID: id}) {
		t.Fatalf("unknown wallet: %+v %v", v, err)
	}
	page, err := transactions(p, context.Background(), id, 0, 50, true)
	if err != nil || page.Transactions == nil || len(page.Transactions) != 0 || page.Next != 0 {
		t.Fatalf("transactions of an unknown wallet: %+v %v", page, err)
	}
}

func TestTransactionPages(t *testing.T) {
	ctx := context.Background()
	p, _ := complete(t)
	id := ksuid.New().String()
	// versions 1..7 applied, then a rejection at version 8, then 9 applied.
	changes := history(id, 7)
	rej := wallet.Event{Type: wallet.DebitRejected, Version: 8, Amount: 100, BalanceAfter: 7, Reason: wallet.ReasonInsufficientFunds}
	changes = append(changes, change(id, rej, wallet.State{Balance: 7, Version: 8}, t0))
	cr := wallet.Event{Type: wallet.Credited, Version: 9, Amount: 1, BalanceAfter: 8}
	changes = append(changes, change(id, cr, wallet.State{Balance: 8, Version: 9}, t0))
	if gaps, err := p.Push(ctx, changes); err != nil || gaps != nil {
		t.Fatal(gaps, err)
	}

	versions := func(withRejected bool, limit int) [][]int64 {
		var pages [][]int64
		var cursor int64
		for {
			page, err := transactions(p, ctx, id, cursor, limit, withRejected)
			if err != nil {
				t.Fatal(err)
			}
			var vs []int64
			for _, tx := range page.Transactions {
				vs = append(vs, tx.Version)
			}
			pages = append(pages, vs)
			if page.Next == 0 {
				return pages
			}
			cursor = page.Next
		}
	}
	eq := func(a, b [][]int64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if len(a[i]) != len(b[i]) {
				return false
			}
			for j := range a[i] {
				if a[i][j] != b[i][j] {
					return false
				}
			}
		}
		return true
	}
	if got, want := versions(false, 3), [][]int64{{9, 7, 6}, {5, 4, 3}, {2, 1}}; !eq(got, want) {
		t.Fatalf("applied pages %v, want %v", got, want)
	}
	if got, want := versions(true, 4), [][]int64{{9, 8, 7, 6}, {5, 4, 3, 2}, {1}}; !eq(got, want) {
		t.Fatalf("pages with rejections %v, want %v", got, want)
	}
	if got, want := versions(false, 8), [][]int64{{9, 7, 6, 5, 4, 3, 2, 1}}; !eq(got, want) {
		t.Fatalf("one exact page %v, want %v", got, want)
	}
}

func TestPushOverwritesACorruptState(t *testing.T) {
	ctx := context.Background()
	p, rs := complete(t)
	id := ksuid.New().String()
	for _, junk := range []string{"not json", `"a string"`, `{"version":"x"}`} {
		if err := rs.Client(t).Set(ctx, readmodel.StateKey(wallet.Name, id), junk, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Push(ctx, history(id, 1)); err != nil {
			t.Fatalf("push over %q: %v", junk, err)
		}
		if v, err := balance(p, ctx, id); err != nil || v.Version != 1 || v.Balance != 1 {
			t.Fatalf("after push over %q: %+v %v", junk, v, err)
		}
	}
}

// A read model without its completeness marker (Redis restarted empty, or
// FLUSHALL) refuses to answer rather than call every wallet empty.
func TestReadsRefuseAnIncompleteReadModel(t *testing.T) {
	ctx := context.Background()
	p, rs := complete(t)
	id := ksuid.New().String()
	if _, err := p.Push(ctx, history(id, 2)); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := balance(p, ctx, id); !errors.Is(err, readmodel.ErrIncomplete) {
		t.Fatalf("balance after FLUSHALL: %v, want ErrIncomplete", err)
	}
	if _, err := transactions(p, ctx, id, 0, 10, false); !errors.Is(err, readmodel.ErrIncomplete) {
		t.Fatalf("transactions after FLUSHALL: %v, want ErrIncomplete", err)
	}
}

// A rebuild interrupted by a FLUSHALL does not mark the read model complete.
func TestFinishRebuildNeedsItsOwnToken(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	p := readmodel.New(rs.Client(t))
	if err := p.BeginRebuild(ctx, readmodel.Whole, "a"); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.FinishRebuild(ctx, readmodel.Whole, "a"); ok || err != nil {
		t.Fatalf("finish after FLUSHALL: %v %v", ok, err)
	}
	if err := p.BeginRebuild(ctx, readmodel.Whole, "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.FinishRebuild(ctx, readmodel.Whole, "a"); ok {
		t.Fatal("a stale token finished the rebuild")
	}
	if ok, err := p.FinishRebuild(ctx, readmodel.Whole, "b"); !ok || err != nil {
		t.Fatalf("finish with the live token: %v %v", ok, err)
	}
	if c, err := p.IsComplete(ctx, readmodel.Whole); !c || err != nil {
		t.Fatalf("IsComplete %v %v", c, err)
	}
}

// Reads that share pipelines answer exactly what single reads answer.
func TestPipelinedBalances(t *testing.T) {
	ctx := t.Context()
	p, _ := complete(t)
	p.EnablePipelining(ctx, 2)
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = ksuid.New().String()
		if _, err := p.Push(ctx, history(ids[i], i+1)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 20*len(ids))
	var wg sync.WaitGroup
	for range 20 {
		for i, id := range ids {
			wg.Go(func() {
				v, err := balance(p, ctx, id)
				if err != nil || v.Version != int64(i+1) || v.Balance != int64(i+1) || v.WalletID != id {
					errs <- fmt.Errorf("wallet %d: %+v %v", i, v, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// With partitions, reads answer only once every partition's writer has
// marked its part complete, and a FLUSHALL takes every part back.
func TestReadsWaitForEveryPartition(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	p := readmodel.New(rs.Client(t))
	w := ksuid.New().String()
	mark := func(i int) {
		t.Helper()
		part := readmodel.Part{Index: i, Of: 3}
		if err := p.BeginRebuild(ctx, part, "t"); err != nil {
			t.Fatal(err)
		}
		if ok, err := p.FinishRebuild(ctx, part, "t"); !ok || err != nil {
			t.Fatalf("finish part %d: %v %v", i, ok, err)
		}
		if ok, err := p.IsComplete(ctx, part); !ok || err != nil {
			t.Fatalf("part %d not complete after finishing: %v %v", i, ok, err)
		}
	}
	readable := func() bool {
		_, berr := p.State(ctx, wallet.Name, w)
		_, terr := p.List(ctx, wallet.Name, w, wallets.Lists(), 0, 10)
		if errors.Is(berr, readmodel.ErrIncomplete) != errors.Is(terr, readmodel.ErrIncomplete) {
			t.Fatalf("balance and transactions disagree: %v / %v", berr, terr)
		}
		return berr == nil
	}
	mark(2)
	mark(0)
	if readable() {
		t.Fatal("reads answered with partition 1 of 3 not yet complete")
	}
	if ok, _ := p.IsComplete(ctx, readmodel.Part{Index: 1, Of: 3}); ok {
		t.Fatal("partition 1 reads as complete before its writer marked it")
	}
	mark(1)
	if !readable() {
		t.Fatal("reads refused with every partition complete")
	}
	if err := rs.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	mark(1)
	if readable() {
		t.Fatal("reads answered after FLUSHALL with only partition 1 re-marked")
	}
	// A writer of a deployment with another partition count starts the
	// marker over rather than trusting a stale one.
	part := readmodel.Part{Index: 0, Of: 2}
	if err := p.BeginRebuild(ctx, part, "t"); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.FinishRebuild(ctx, part, "t"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if v, _ := rs.Client(t).Get(ctx, readmodel.CompleteKey).Result(); v != "10" {
		t.Fatalf("marker after a 2-partition writer finished part 0: %q, want %q", v, "10")
	}
}

// With replicas required, a push no replica acknowledges in time fails,
// so the writer keeps the wallet dirty and pushes it again later.
func TestPushWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	p, _ := complete(t)
	h := history(ksuid.New().String(), 2)
	if _, err := p.Push(ctx, h[:1]); err != nil {
		t.Fatalf("without replicas required: %v", err)
	}
	p.RequireReplicas(1, 100*time.Millisecond)
	start := time.Now()
	_, err := p.Push(ctx, h[1:])
	if err == nil || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("a push on a Redis without replicas: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("gave up after %s, before the 100ms wait", waited)
	}
}

// A read model written in the old key layout (sorted sets without hash
// tags) is erased once, to be projected again; one in this layout is kept.
func TestEnsureLayoutErasesAnOldLayout(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	p := readmodel.New(rdb)
	id := ksuid.New().String()
	rdb.Set(ctx, "wallet."+id, `{"wallet_id":"`+id+`","balance":1,"version":1}`, 0)
	rdb.ZAdd(ctx, "wallet."+id+".tx", redis.Z{Score: 1, Member: "x"})
	rdb.Set(ctx, readmodel.CompleteKey, "1", 0)
	if erased, err := p.EnsureLayout(ctx, []string{wallet.Name}); !erased || err != nil {
		t.Fatalf("old layout: erased %v, %v", erased, err)
	}
	if n := rdb.Exists(ctx, "wallet."+id, "wallet."+id+".tx", readmodel.CompleteKey).Val(); n != 0 {
		t.Fatalf("%d keys of the old layout left", n)
	}
	// Projected again in this layout, it is kept.
	if _, err := p.Push(ctx, history(id, 1)); err != nil {
		t.Fatal(err)
	}
	if erased, err := p.EnsureLayout(ctx, []string{wallet.Name}); erased || err != nil {
		t.Fatalf("this layout: erased %v, %v", erased, err)
	}
	if n := rdb.Exists(ctx, readmodel.StateKey(wallet.Name, id), readmodel.ListKey(wallet.Name, id, wallet.ListTransactions)).Val(); n != 2 {
		t.Fatalf("%d of the wallet's 2 keys left", n)
	}
}

// A hash field is set by the newest event that set it, whatever order
// pushes arrive in: a late or repeated push of an older event never puts
// an older value back. Field reads one field, nil for one never set.
func TestHashFieldsNeverMoveBackwards(t *testing.T) {
	ctx := context.Background()
	p, _ := complete(t)
	id := ksuid.New().String()
	h := history(id, 3)
	for i := range h {
		h[i].Hashes = []string{"holds"}
		h[i].Fields = []readmodel.Field{{Hash: 0, Version: h[i].Version, Name: "h1", Value: fmt.Appendf(nil, `{"v":%d}`, h[i].Version)}}
	}
	h[1].Fields = append(h[1].Fields, readmodel.Field{Hash: 0, Version: 2, Name: "h2", Value: []byte(`{"v":2}`)})
	for _, c := range []readmodel.Change{h[0], h[1], h[2], h[1], h[0]} {
		if gaps, err := p.Push(ctx, []readmodel.Change{c}); err != nil || gaps != nil {
			t.Fatalf("push v%d: gaps %v, %v", c.Version, gaps, err)
		}
	}
	for field, want := range map[string]string{"h1": `{"v":3}`, "h2": `{"v":2}`, "h3": ""} {
		got, err := p.Field(ctx, wallet.Name, id, "holds", field)
		if err != nil || string(got) != want || (want == "") != (got == nil) {
			t.Errorf("field %s: %q %v, want %q", field, got, err, want)
		}
	}
	if _, err := p.Push(ctx, []readmodel.Change{{Domain: wallet.Name, ID: id, Lists: h[0].Lists, From: 4, Version: 4, State: h[2].State,
		Fields: []readmodel.Field{{Hash: 1, Version: 4, Name: "x"}}}}); err == nil {
		t.Fatal("a push to a hash the change does not name was taken")
	}
}

// An indexed domain's streams are listed in id order a page at a time,
// each once however often it is pushed, with its state; erasing the
// domain erases its index.
func TestIndexPages(t *testing.T) {
	p, _ := complete(t)
	ctx := context.Background()
	ids := []string{"2Qd2Xb6pRRG2d0lLuY5kVV9ZyAc", "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAa", "2Qd2Xb6pRRG2d0lLuY5kVV9ZyAb"}
	for _, id := range ids {
		for v := int64(1); v <= 2; v++ { // pushed twice: listed once
			c := readmodel.Change{Domain: "item", ID: id, Indexed: true, From: v, Version: v, State: fmt.Appendf(nil, `{"version":%d,"id":%q}`, v, id)}
			if _, err := p.Push(ctx, []readmodel.Change{c}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not indexed: a domain's stream that is not, and another domain.
	if _, err := p.Push(ctx, []readmodel.Change{{Domain: "wallet", ID: ids[0], From: 1, Version: 1, State: []byte(`{"version":1}`)}}); err != nil {
		t.Fatal(err)
	}
	first, err := p.Index(ctx, "item", "", 2)
	if err != nil || !slices.Equal(first.IDs, []string{ids[1], ids[2]}) || !first.More ||
		string(first.States[0]) != fmt.Sprintf(`{"version":2,"id":%q}`, ids[1]) {
		t.Fatalf("first page: %+v %s, %v", first, first.States, err)
	}
	rest, err := p.Index(ctx, "item", first.IDs[1], 2)
	if err != nil || !slices.Equal(rest.IDs, []string{ids[0]}) || rest.More {
		t.Fatalf("second page: %+v, %v", rest, err)
	}
	if none, err := p.Index(ctx, "wallet", "", 10); err != nil || len(none.IDs) != 0 || none.More {
		t.Fatalf("a domain with no index: %+v, %v", none, err)
	}
	if _, err := p.Erase(ctx, []string{"item"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Index(ctx, "item", "", 10); !errors.Is(err, readmodel.ErrIncomplete) {
		t.Fatalf("index of an erased read model: %v", err)
	}
	if err := p.BeginRebuild(ctx, readmodel.Whole, "again"); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.FinishRebuild(ctx, readmodel.Whole, "again"); !ok || err != nil {
		t.Fatalf("FinishRebuild: %v %v", ok, err)
	}
	if gone, err := p.Index(ctx, "item", "", 10); err != nil || len(gone.IDs) != 0 {
		t.Fatalf("the index after the erase: %+v, %v", gone, err)
	}
}

package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
)

// step is one request of a scenario and what it must answer.
type step struct {
	method, path, body string
	hdr                map[string]string
	status             int
	code               bus.Code // of a problem
}

// run sends the step and checks its status and, for a problem, its code;
// it returns the body.
func (st step) run(t *testing.T, s *stack) []byte {
	t.Helper()
	status, hdr, body := s.do(st.method, st.path, st.body, st.hdr)
	if status != st.status {
		t.Fatalf("%s %s %s: %d, want %d: %s", st.method, st.path, st.body, status, st.status, body)
	}
	if st.code != "" {
		p := decode[httpapi.Problem](t, body)
		if p.Code != st.code || hdr.Get("Content-Type") != "application/problem+json" || p.Detail == "" {
			t.Fatalf("%s %s %s: problem %+v (%s), want code %s", st.method, st.path, st.body, p, hdr.Get("Content-Type"), st.code)
		}
	}
	return body
}

// TestWalletLifecycle drives one wallet through its whole life with curl's
// requests: opened with an owner, metadata and an overdraft, used into the
// overdraft, updated, frozen, unfrozen, emptied and closed; each refusal on
// the way is a 409 with its code and an event in the log.
func TestWalletLifecycle(t *testing.T) {
	s := startStack(t)
	status, hdr, body := s.do("POST", "/wallet", `{"owner": "ann@example.com", "metadata": {"tier": "gold", "region": "eu"}, "overdraft_limit": 100}`, nil)
	if status != http.StatusCreated {
		t.Fatalf("open: %d %s", status, body)
	}
	opened := decode[wallet.Wallet](t, body)
	id := opened.WalletID
	if hdr.Get("Location") != "/wallet/"+id || opened.Status != wallet.StatusOpen || opened.Owner != "ann@example.com" ||
		!maps.Equal(opened.Metadata, map[string]string{"tier": "gold", "region": "eu"}) || opened.OverdraftLimit != 100 ||
		opened.Balance != 0 || opened.Version != 1 || opened.CreatedAt.IsZero() || !opened.UpdatedAt.Equal(opened.CreatedAt) {
		t.Fatalf("open answered %s (Location %q)", body, hdr.Get("Location"))
	}
	if got := decode[wallet.Wallet](t, step{"GET", "/wallet/" + id, "", nil, 200, ""}.run(t, s)); !equalWallets(got, opened) {
		t.Fatalf("GET after open: %+v, open answered %+v", got, opened)
	}
	w := "/wallet/" + id
	for _, st := range []step{
		{"POST", w + "/credit", `{"amount": 100}`, nil, 200, ""},
		{"POST", w + "/debit", `{"amount": 150}`, nil, 200, ""}, // into the overdraft: -50
		{"POST", w + "/debit", `{"amount": 51}`, nil, 409, bus.CodeInsufficientFunds},
		{"PATCH", w, `{"owner": "bob@example.com", "metadata": {"region": null, "vip": "yes"}}`, nil, 200, ""},
		{"PATCH", w, `{}`, nil, 400, bus.CodeInvalidBody},
		{"PATCH", w, `{"overdraft_limit": -1}`, nil, 400, bus.CodeInvalidOverdraftLimit},
		{"PATCH", w, `{"owner": 5}`, nil, 400, bus.CodeInvalidOwner},
		{"PATCH", w, `{"metadata": {"": "x"}}`, nil, 400, bus.CodeInvalidMetadata},
		{"POST", w + "/freeze", "", nil, 200, ""},
		{"POST", w + "/freeze", "", nil, 409, bus.CodeWalletFrozen},
		{"POST", w + "/debit", `{"amount": 1}`, nil, 409, bus.CodeWalletFrozen},
		{"POST", w + "/credit", `{"amount": 50}`, nil, 200, ""}, // a frozen wallet takes credits: 0
		{"POST", w + "/unfreeze", "{}", nil, 200, ""},
		{"POST", w + "/unfreeze", "", nil, 409, bus.CodeWalletNotFrozen},
		{"POST", w + "/credit", `{"amount": 5}`, nil, 200, ""},
		{"POST", w + "/close", "", nil, 409, bus.CodeBalanceNotZero},
		{"POST", w + "/debit", `{"amount": 5}`, nil, 200, ""},
		{"POST", w + "/close", `{"x": 1}`, nil, 400, bus.CodeInvalidBody},
		{"POST", w + "/close", "", nil, 200, ""},
		{"POST", w + "/credit", `{"amount": 5}`, nil, 409, bus.CodeWalletClosed},
		{"POST", w + "/debit", `{"amount": 5}`, nil, 409, bus.CodeWalletClosed},
		{"PATCH", w, `{"owner": "carl"}`, nil, 409, bus.CodeWalletClosed},
		{"POST", w + "/freeze", "", nil, 409, bus.CodeWalletClosed},
		{"POST", w + "/close", "", nil, 409, bus.CodeWalletClosed},
	} {
		st.run(t, s)
	}
	got := decode[wallet.Wallet](t, step{"GET", w, "", nil, 200, ""}.run(t, s))
	if got.Status != wallet.StatusClosed || got.Balance != 0 || got.Owner != "bob@example.com" ||
		!maps.Equal(got.Metadata, map[string]string{"tier": "gold", "vip": "yes"}) || got.Version != 20 || !got.CreatedAt.Equal(opened.CreatedAt) {
		t.Fatalf("the closed wallet: %+v", got)
	}
	// Redis holds it at wallet.<id>, the JSON the GET shows.
	stored, err := s.redis.Client(t).Get(t.Context(), readmodel.StateKey(wallet.Name, id)).Bytes()
	if err != nil || !strings.Contains(string(stored), `"status":"closed"`) {
		t.Fatalf("redis-cli GET wallet.%s: %s %v", id, stored, err)
	}
	// Every command is an event, refusals included; money refusals are in
	// the statement with ?include=rejected, the lifecycle is not.
	db := s.writerDB()
	for typ, n := range map[string]int64{"opened": 1, "credited": 3, "debited": 2, "debit_rejected": 3, "credit_rejected": 1,
		"updated": 1, "frozen": 1, "unfrozen": 1, "closed": 1, "command_rejected": 6} {
		if got := queryInt(t, db, `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ? AND type = ?`, id, typ); got != n {
			t.Errorf("%d %s events, want %d", got, typ, n)
		}
	}
	page := decode[txPage](t, step{"GET", w + "/transactions?include=rejected", "", nil, 200, ""}.run(t, s))
	if len(page.Transactions) != 9 || page.Transactions[0].Type != wallet.DebitRejected || page.Transactions[1].Type != wallet.CreditRejected ||
		page.Transactions[1].Amount != 5 {
		t.Fatalf("statement with refusals: %+v", page.Transactions)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

func equalWallets(a, b wallet.Wallet) bool {
	return a.WalletID == b.WalletID && a.Status == b.Status && a.Owner == b.Owner && maps.Equal(a.Metadata, b.Metadata) &&
		a.OverdraftLimit == b.OverdraftLimit && a.Balance == b.Balance && a.Version == b.Version &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// TestWalletsNobodyOpened: an id nobody opened takes credits and debits as
// before wallets had a lifecycle, reads balance 0, and is a wallet (open,
// no owner) once it has been used; until then it is not found.
func TestWalletsNobodyOpened(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	w := "/wallet/" + id
	eventually(t, 10*time.Second, "the read model complete", func() bool {
		st, _, _ := s.do("GET", w+"/balance", "", nil)
		return st == 200
	})
	step{"GET", w, "", nil, 404, bus.CodeWalletNotFound}.run(t, s)
	step{"POST", w + "/freeze", "", nil, 404, bus.CodeWalletNotFound}.run(t, s)
	step{"PATCH", w, `{"owner": "x"}`, nil, 404, bus.CodeWalletNotFound}.run(t, s)
	if b := decode[result](t, step{"GET", w + "/balance", "", nil, 200, ""}.run(t, s)); b.Balance != 0 || b.Version != 0 {
		t.Fatalf("balance of an unused wallet: %+v", b)
	}
	step{"POST", w + "/debit", `{"amount": 1}`, nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	step{"POST", w + "/credit", `{"amount": 7}`, nil, 200, ""}.run(t, s)
	got := decode[wallet.Wallet](t, step{"GET", w, "", nil, 200, ""}.run(t, s))
	if got.Status != wallet.StatusOpen || got.Owner != "" || len(got.Metadata) != 0 || got.Balance != 7 || got.Version != 2 || got.CreatedAt.IsZero() {
		t.Fatalf("a wallet used without opening: %+v", got)
	}
	step{"POST", "/wallet/" + id + "/close", "", nil, 409, bus.CodeBalanceNotZero}.run(t, s)
	// An empty POST /wallet opens a plain wallet under a fresh id, as it
	// always gave one.
	opened := decode[wallet.Wallet](t, step{"POST", "/wallet", "", nil, 201, ""}.run(t, s))
	if opened.WalletID == "" || opened.Owner != "" || opened.Status != wallet.StatusOpen || opened.Version != 1 {
		t.Fatalf("POST /wallet without a body: %+v", opened)
	}
}

// TestOpenIsIdempotent: a retried POST /wallet under one Idempotency-Key
// answers the same wallet, once opened.
func TestOpenIsIdempotent(t *testing.T) {
	s := startStack(t)
	key := map[string]string{"Idempotency-Key": "open-" + ksuid.New().String()}
	first := step{"POST", "/wallet", `{"owner": "dan"}`, key, 201, ""}.run(t, s)
	status, hdr, again := s.do("POST", "/wallet", `{"owner": "dan"}`, key)
	if status != 201 || hdr.Get(httpapi.ReplayedHeader) != "true" || string(again) != string(first) {
		t.Fatalf("retry of an open: %d %q %s, first %s", status, hdr.Get(httpapi.ReplayedHeader), again, first)
	}
	step{"POST", "/wallet", `{"owner": "eve"}`, key, 422, bus.CodeIdempotencyKeyReused}.run(t, s)
	id := decode[wallet.Wallet](t, first).WalletID
	if n := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id); n != 1 {
		t.Fatalf("%d events for one open retried", n)
	}
	if n := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE type = 'opened'`); n != 1 {
		t.Fatalf("%d wallets opened under one key", n)
	}
}

// TestAPICommands: POST /api runs each command by name and answers what its
// REST route answers.
func TestAPICommands(t *testing.T) {
	s := startStack(t)
	api := func(command string, data any, status int, code bus.Code) []byte {
		t.Helper()
		b, err := json.Marshal(map[string]any{"command": command, "data": data})
		if err != nil {
			t.Fatal(err)
		}
		return step{"POST", "/api", string(b), nil, status, code}.run(t, s)
	}
	opened := decode[wallet.Wallet](t, api("account_open", map[string]any{"account_owner_email": "fay@example.com"}, 201, ""))
	id := opened.WalletID
	if opened.Owner != "fay@example.com" || opened.Status != wallet.StatusOpen {
		t.Fatalf("account_open: %+v", opened)
	}
	if r := decode[result](t, api("account_deposit", map[string]any{"account_id": id, "amount": 50}, 200, "")); r.Balance != 50 {
		t.Fatalf("account_deposit: %+v", r)
	}
	if r := decode[result](t, api("account_withdraw", map[string]any{"account_id": id, "amount": 20}, 200, "")); r.Balance != 30 {
		t.Fatalf("account_withdraw: %+v", r)
	}
	viaAPI := api("account_withdraw", map[string]any{"account_id": id, "amount": 31}, 409, bus.CodeInsufficientFunds)
	_, _, viaREST := s.do("POST", "/wallet/"+id+"/debit", `{"amount": 31}`, nil)
	if a, b := decode[httpapi.Problem](t, viaAPI), decode[httpapi.Problem](t, viaREST); a.Detail != b.Detail || a.Title != b.Title ||
		a.Status != b.Status || *a.Balance != 30 || *b.Balance != 30 || *a.Version != *b.Version-1 {
		t.Fatalf("the same refusal through /api and REST: %s / %s", viaAPI, viaREST)
	}
	api("wallet_credit", map[string]any{"wallet_id": id, "amount": 5.0}, 200, "")
	api("wallet_debit", map[string]any{"wallet_id": id, "amount": 35}, 200, "")
	if w := decode[wallet.Wallet](t, api("wallet_update", map[string]any{"wallet_id": id, "metadata": map[string]any{"k": "v"}, "overdraft_limit": 10}, 200, "")); w.Metadata["k"] != "v" || w.OverdraftLimit != 10 {
		t.Fatalf("wallet_update: %+v", w)
	}
	api("wallet_freeze", map[string]any{"wallet_id": id}, 200, "")
	api("wallet_debit", map[string]any{"wallet_id": id, "amount": 1}, 409, bus.CodeWalletFrozen)
	api("wallet_unfreeze", map[string]any{"wallet_id": id}, 200, "")
	if w := decode[wallet.Wallet](t, api("wallet_close", map[string]any{"wallet_id": id}, 200, "")); w.Status != wallet.StatusClosed {
		t.Fatalf("wallet_close: %+v", w)
	}
	if w := decode[wallet.Wallet](t, api("wallet_open", nil, 201, "")); w.WalletID == id || w.Version != 1 {
		t.Fatalf("wallet_open: %+v", w)
	}

	// Bad commands and bad data: the REST route's codes.
	unknown := decode[httpapi.Problem](t, api("account_steal", map[string]any{}, 400, bus.CodeUnknownCommand))
	if !strings.Contains(unknown.Detail, "account_deposit, account_open, account_withdraw, item_add, item_restock, order_place, wallet_capture, wallet_close") {
		t.Fatalf("unknown_command does not list the commands: %s", unknown.Detail)
	}
	other := ksuid.New().String()
	for _, c := range []struct {
		command string
		data    any
		status  int
		code    bus.Code
	}{
		{"account_deposit", map[string]any{"amount": 5}, 400, bus.CodeInvalidWalletID},
		{"account_deposit", map[string]any{"account_id": "nope", "amount": 5}, 400, bus.CodeInvalidWalletID},
		{"account_deposit", map[string]any{"account_id": 7, "amount": 5}, 400, bus.CodeInvalidWalletID},
		{"account_deposit", map[string]any{"account_id": other, "amount": 2.5}, 400, bus.CodeInvalidAmount},
		{"account_deposit", map[string]any{"account_id": other, "amount": "5"}, 400, bus.CodeInvalidAmount},
		{"account_deposit", map[string]any{"account_id": other}, 400, bus.CodeInvalidAmount},
		{"account_deposit", map[string]any{"account_id": other, "amount": 5, "currency": "EUR"}, 400, bus.CodeInvalidBody},
		{"account_open", map[string]any{"account_owner_email": 5}, 400, bus.CodeInvalidOwner},
		{"account_open", map[string]any{"account_owner_email": "a", "owner": "b"}, 400, bus.CodeInvalidBody},
		{"wallet_update", map[string]any{"wallet_id": other, "owner": "x"}, 404, bus.CodeWalletNotFound},
		{"wallet_update", map[string]any{"wallet_id": other}, 400, bus.CodeInvalidBody},
		{"wallet_freeze", map[string]any{"wallet_id": other, "now": true}, 400, bus.CodeInvalidBody},
	} {
		api(c.command, c.data, c.status, c.code)
	}
	for _, body := range []string{``, `[]`, `{"command": 5}`, `{"data": {}}`, `{"command": "wallet_open", "extra": 1}`,
		`{"command": "wallet_open", "command": "wallet_open"}`, `{"command": "wallet_credit", "data": [1]}`} {
		step{"POST", "/api", body, nil, 400, bus.CodeInvalidBody}.run(t, s)
	}
	step{"GET", "/api", "", nil, 405, bus.CodeMethodNotAllowed}.run(t, s)
	// Idempotency-Key works as on the REST routes.
	key := map[string]string{"Idempotency-Key": "api-" + ksuid.New().String()}
	b := `{"command": "account_deposit", "data": {"account_id": "` + other + `", "amount": 9}}`
	first := step{"POST", "/api", b, key, 200, ""}.run(t, s)
	status, hdr, again := s.do("POST", "/api", b, key)
	if status != 200 || hdr.Get(httpapi.ReplayedHeader) != "true" || string(again) != string(first) {
		t.Fatalf("an /api retry: %d %s", status, again)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
)

// Bad input gets the documented status and code as problem+json, and
// nothing is written anywhere.
func TestBadInput(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	credit := "/wallet/" + id + "/credit"
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     bus.Code
	}{
		{"non-KSUID id", "POST", "/wallet/abc/credit", `{"amount": 5}`, nil, 400, bus.CodeInvalidWalletID},
		{"non-KSUID id on a read", "GET", "/wallet/not-a-ksuid/balance", "", nil, 400, bus.CodeInvalidWalletID},
		{"amount 0", "POST", credit, `{"amount": 0}`, nil, 400, bus.CodeInvalidAmount},
		{"amount -1", "POST", credit, `{"amount": -1}`, nil, 400, bus.CodeInvalidAmount},
		{"amount 2.5", "POST", credit, `{"amount": 2.5}`, nil, 400, bus.CodeInvalidAmount},
		{"amount as a string", "POST", credit, `{"amount": "5"}`, nil, 400, bus.CodeInvalidAmount},
		{"amount 1e16", "POST", credit, `{"amount": 1e16}`, nil, 400, bus.CodeInvalidAmount},
		{"amount 10^15+1", "POST", credit, `{"amount": 1000000000000001}`, nil, 400, bus.CodeInvalidAmount},
		{"huge exponent", "POST", credit, `{"amount": 1e999999999}`, nil, 400, bus.CodeInvalidAmount},
		{"amount null", "POST", credit, `{"amount": null}`, nil, 400, bus.CodeInvalidAmount},
		{"amount true", "POST", credit, `{"amount": true}`, nil, 400, bus.CodeInvalidAmount},
		{"amount missing", "POST", credit, `{}`, nil, 400, bus.CodeInvalidAmount},
		{"extra field", "POST", credit, `{"amount": 5, "currency": "EUR"}`, nil, 400, bus.CodeInvalidBody},
		{"invalid JSON", "POST", credit, `{"amount": 5`, nil, 400, bus.CodeInvalidBody},
		{"form body", "POST", credit, `amount=5`, nil, 400, bus.CodeInvalidBody},
		{"JSON array", "POST", credit, `[5]`, nil, 400, bus.CodeInvalidBody},
		{"two objects", "POST", credit, `{"amount": 5}{"amount": 5}`, nil, 400, bus.CodeInvalidBody},
		{"empty body", "POST", credit, ``, nil, 400, bus.CodeInvalidBody},
		{"100 KiB body", "POST", credit, `{"amount": 5, "pad": "` + strings.Repeat("x", 100<<10) + `"}`, nil, 413, bus.CodeBodyTooLarge},
		{"empty Idempotency-Key", "POST", credit, `{"amount": 5}`, map[string]string{"Idempotency-Key": ""}, 400, bus.CodeInvalidIdempotencyKey},
		{"256-char Idempotency-Key", "POST", credit, `{"amount": 5}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, bus.CodeInvalidIdempotencyKey},
		{"wrong method on credit", "GET", credit, "", nil, 405, bus.CodeMethodNotAllowed},
		{"wrong method on balance", "DELETE", "/wallet/" + id + "/balance", "", nil, 405, bus.CodeMethodNotAllowed},
		{"unknown path", "GET", "/wallets", "", nil, 404, bus.CodeNotFound},
		{"unknown action", "POST", "/wallet/" + id + "/steal", `{"amount": 5}`, nil, 404, bus.CodeNotFound},
		{"empty path segment", "GET", "/wallet//balance", "", nil, 404, bus.CodeNotFound},
		{"dot-dot segment", "POST", "/wallet/" + id + "/../" + id + "/credit", `{"amount": 5}`, nil, 404, bus.CodeNotFound},
		{"dot segment", "GET", "/wallet/" + id + "/./balance", "", nil, 404, bus.CodeNotFound},
		{"bad limit", "GET", "/wallet/" + id + "/transactions?limit=0", "", nil, 400, bus.CodeInvalidQuery},
		{"limit too large", "GET", "/wallet/" + id + "/transactions?limit=1001", "", nil, 400, bus.CodeInvalidQuery},
		{"bad cursor", "GET", "/wallet/" + id + "/transactions?cursor=abc", "", nil, 400, bus.CodeInvalidQuery},
		{"bad include", "GET", "/wallet/" + id + "/transactions?include=all", "", nil, 400, bus.CodeInvalidQuery},
		{"unknown query parameter", "GET", "/wallet/" + id + "/transactions?limt=10", "", nil, 400, bus.CodeInvalidQuery},
		{"limit given twice", "GET", "/wallet/" + id + "/transactions?limit=1&limit=2", "", nil, 400, bus.CodeInvalidQuery},
		{"unreadable query", "GET", "/wallet/" + id + "/transactions?limit=5;include=rejected", "", nil, 400, bus.CodeInvalidQuery},
		{"query on balance", "GET", "/wallet/" + id + "/balance?limit=1", "", nil, 400, bus.CodeInvalidQuery},
		{"amount in the query", "POST", credit + "?amount=5", `{"amount": 5}`, nil, 400, bus.CodeInvalidQuery},
		{"query on create", "POST", "/wallet?owner=me", "", nil, 400, bus.CodeInvalidQuery},
		{"open with an unknown field", "POST", "/wallet", `{"owner": "a", "name": "b"}`, nil, 400, bus.CodeInvalidBody},
		{"open with owner twice", "POST", "/wallet", `{"owner": "a", "owner": "b"}`, nil, 400, bus.CodeInvalidBody},
		{"open with a number for owner", "POST", "/wallet", `{"owner": 5}`, nil, 400, bus.CodeInvalidOwner},
		{"open with a 256-byte owner", "POST", "/wallet", `{"owner": "` + strings.Repeat("o", 256) + `"}`, nil, 400, bus.CodeInvalidOwner},
		{"open with nested metadata", "POST", "/wallet", `{"metadata": {"a": {"b": "c"}}}`, nil, 400, bus.CodeInvalidMetadata},
		{"open with a null metadata value", "POST", "/wallet", `{"metadata": {"a": null}}`, nil, 400, bus.CodeInvalidMetadata},
		{"open with metadata as a list", "POST", "/wallet", `{"metadata": ["a"]}`, nil, 400, bus.CodeInvalidMetadata},
		{"open with 33 metadata keys", "POST", "/wallet", `{"metadata": {` + manyKeys(33) + `}}`, nil, 400, bus.CodeInvalidMetadata},
		{"open with a negative overdraft", "POST", "/wallet", `{"overdraft_limit": -1}`, nil, 400, bus.CodeInvalidOverdraftLimit},
		{"open with an overdraft above 10^15", "POST", "/wallet", `{"overdraft_limit": 1e16}`, nil, 400, bus.CodeInvalidOverdraftLimit},
		{"open with a string overdraft", "POST", "/wallet", `{"overdraft_limit": "5"}`, nil, 400, bus.CodeInvalidOverdraftLimit},
		{"open with a JSON list", "POST", "/wallet", `[]`, nil, 400, bus.CodeInvalidBody},
		{"open with a 100 KiB body", "POST", "/wallet", `{"owner": "` + strings.Repeat("x", 100<<10) + `"}`, nil, 413, bus.CodeBodyTooLarge},
		{"non-KSUID id on get", "GET", "/wallet/abc", "", nil, 400, bus.CodeInvalidWalletID},
		{"non-KSUID id on patch", "PATCH", "/wallet/abc", `{"owner": "a"}`, nil, 400, bus.CodeInvalidWalletID},
		{"non-KSUID id on freeze", "POST", "/wallet/abc/freeze", "", nil, 400, bus.CodeInvalidWalletID},
		{"patch without a body", "PATCH", "/wallet/" + id, "", nil, 400, bus.CodeInvalidBody},
		{"patch of nothing", "PATCH", "/wallet/" + id, `{}`, nil, 400, bus.CodeInvalidBody},
		{"patch of an unknown field", "PATCH", "/wallet/" + id, `{"status": "closed"}`, nil, 400, bus.CodeInvalidBody},
		{"patch of a wallet nobody used", "PATCH", "/wallet/" + id, `{"owner": "a"}`, nil, 404, bus.CodeWalletNotFound},
		{"get a wallet nobody used", "GET", "/wallet/" + id, "", nil, 404, bus.CodeWalletNotFound},
		{"freeze a wallet nobody used", "POST", "/wallet/" + id + "/freeze", "", nil, 404, bus.CodeWalletNotFound},
		{"close with a body", "POST", "/wallet/" + id + "/close", `{"force": true}`, nil, 400, bus.CodeInvalidBody},
		{"unfreeze with a query", "POST", "/wallet/" + id + "/unfreeze?now=1", "", nil, 400, bus.CodeInvalidQuery},
		{"delete a wallet", "DELETE", "/wallet/" + id, "", nil, 405, bus.CodeMethodNotAllowed},
		{"wrong method on freeze", "GET", "/wallet/" + id + "/freeze", "", nil, 405, bus.CodeMethodNotAllowed},
		{"api without a command", "POST", "/api", `{"data": {}}`, nil, 400, bus.CodeInvalidBody},
		{"api with an unknown command", "POST", "/api", `{"command": "drop_tables"}`, nil, 400, bus.CodeUnknownCommand},
		{"api deposit without an account", "POST", "/api", `{"command": "account_deposit", "data": {"amount": 5}}`, nil, 400, bus.CodeInvalidWalletID},
		{"api deposit of 2.5", "POST", "/api", `{"command": "account_deposit", "data": {"account_id": "` + id + `", "amount": 2.5}}`, nil, 400, bus.CodeInvalidAmount},
		{"api freeze of a wallet nobody used", "POST", "/api", `{"command": "wallet_freeze", "data": {"wallet_id": "` + id + `"}}`, nil, 404, bus.CodeWalletNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, h, body := s.do(tt.method, tt.path, tt.body, tt.hdr)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %s", st, tt.status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q: %s", ct, body)
			}
			p := decode[httpapi.Problem](t, body)
			if p.Code != tt.code || p.Status != tt.status || p.Title == "" || p.Detail == "" || p.Type == "" {
				t.Fatalf("problem %+v, want code %s", p, tt.code)
			}
			if strings.Contains(p.Detail, "{") && strings.Contains(p.Detail, "0x") {
				t.Fatalf("detail looks like a Go value dump: %q", p.Detail)
			}
			if st == 405 && h.Get("Allow") == "" {
				t.Fatal("405 without an Allow header")
			}
		})
	}

	if n := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events`); n != 0 {
		t.Fatalf("bad input stored %d events", n)
	}
	keys, err := s.redis.Client(t).Keys(t.Context(), "wallet.*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("bad input left Redis keys %v (%v)", keys, err)
	}
	if st, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil); st != http.StatusOK || decode[result](t, body).Version != 0 {
		t.Fatalf("wallet after bad input: %d %s", st, body)
	}
}

// manyKeys is n metadata members, "k0": "v", "k1": "v", ...
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"k%d": "v"`, i)
	}
	return b.String()
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/ksuid"
	"gopkg.in/yaml.v3"

	"coffer/pkg/httpapi"
)

// openAPI checks live responses against openapi.yaml: the status is listed
// for the operation, the Content-Type is one it lists, and the body is valid
// against its schema (types, required and unknown fields, enums, bounds,
// patterns) — so a field the handlers add, drop or rename fails the test.
type openAPI struct {
	doc   map[string]any
	paths []pathTemplate
}

type pathTemplate struct {
	template string
	re       *regexp.Regexp
}

func loadOpenAPI(t *testing.T, raw []byte) *openAPI {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	o := &openAPI{doc: doc}
	for p := range doc["paths"].(map[string]any) {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
		o.paths = append(o.paths, pathTemplate{p, re})
	}
	return o
}

// resolve follows a local $ref.
func (o *openAPI) resolve(v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = o.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		v = cur
	}
}

// check reports every way one response departs from the document.
func (o *openAPI) check(method, path string, status int, header http.Header, body []byte) []string {
	where := fmt.Sprintf("%s %s → %d", method, path, status)
	var item map[string]any
	for _, p := range o.paths {
		if p.re.MatchString(path) {
			item = o.doc["paths"].(map[string]any)[p.template].(map[string]any)
		}
	}
	if item == nil {
		// Unknown paths are 404 problems, which no path can list.
		if status != 404 {
			return []string{where + ": no documented path, and not 404"}
		}
		return o.body(where, o.resolve(map[string]any{"$ref": "#/components/responses/Problem"}), header, body)
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		if status != 405 {
			return []string{where + ": undocumented method, and not 405"}
		}
		return o.body(where, o.resolve(map[string]any{"$ref": "#/components/responses/Problem"}), header, body)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(status)]
	if !ok {
		return []string{where + ": status not documented for the operation"}
	}
	return o.body(where, o.resolve(resp), header, body)
}

func (o *openAPI) body(where string, resp any, header http.Header, body []byte) []string {
	content, _ := resp.(map[string]any)["content"].(map[string]any)
	if content == nil {
		if len(body) > 0 {
			return []string{where + ": a body where the document has none"}
		}
		return nil
	}
	ctype, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	media, ok := content[ctype].(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: Content-Type %q not documented", where, ctype)}
	}
	if !strings.HasSuffix(ctype, "json") {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{fmt.Sprintf("%s: body is not JSON: %v", where, err)}
	}
	return o.validate(where, media["schema"], v)
}

// validate checks v against the JSON Schema subset the document uses.
func (o *openAPI) validate(at string, schema, v any) []string {
	s, _ := o.resolve(schema).(map[string]any)
	if s == nil {
		return nil
	}
	var errs []string
	fail := func(f string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(f, args...)) }
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			fail("%v is %s, want %v", v, jsonType(v), types)
			return errs
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		fail("%v is not one of %v", v, enum)
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range asSlice(s["required"]) {
			if _, ok := v[r.(string)]; !ok {
				fail("missing required %q", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, x := range v {
			if p, ok := props[k]; ok {
				errs = append(errs, o.validate(at+"."+k, p, x)...)
				continue
			}
			switch extra := s["additionalProperties"].(type) {
			case bool:
				if !extra {
					fail("undocumented field %q", k)
				}
			case map[string]any:
				errs = append(errs, o.validate(at+"."+k, extra, x)...)
			}
		}
	case []any:
		for i, x := range v {
			errs = append(errs, o.validate(fmt.Sprintf("%s[%d]", at, i), s["items"], x)...)
		}
	case json.Number:
		n, _ := v.Float64()
		if m, ok := s["minimum"].(int); ok && n < float64(m) {
			fail("%v < minimum %d", v, m)
		}
	case string:
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(v) {
			fail("%q does not match %s", v, p)
		}
	}
	return errs
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// TestResponsesMatchOpenAPI drives every route through its successes and
// refusals on a live stack and checks each response against openapi.yaml,
// which wallet_server also serves.
func TestResponsesMatchOpenAPI(t *testing.T) {
	s := startStack(t)
	st, hdr, served := s.do("GET", "/openapi.yaml", "", nil)
	if st != 200 || !bytes.Equal(served, httpapi.OpenAPI) || hdr.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q, %d bytes", st, hdr.Get("Content-Type"), len(served))
	}
	o := loadOpenAPI(t, served)

	w, fresh, other := ksuid.New().String(), ksuid.New().String(), ksuid.New().String()
	wallet := "/wallet/" + w
	type call struct {
		method, path, body string
		hdr                map[string]string
		want               int
	}
	calls := []call{
		{"POST", "/wallet", "", nil, 201},
		{"GET", "/wallet", "", nil, 405},
		{"POST", wallet + "/credit", `{"amount": 500}`, nil, 200},
		{"POST", wallet + "/debit", `{"amount": 200}`, nil, 200},
		{"POST", wallet + "/debit", `{"amount": 1000}`, nil, 409},
		{"POST", wallet + "/credit", `{"amount": 5}`, map[string]string{"Idempotency-Key": "spec-1"}, 200},
		{"POST", wallet + "/credit", `{"amount": 5}`, map[string]string{"Idempotency-Key": "spec-1"}, 200},
		{"POST", wallet + "/credit", `{"amount": 6}`, map[string]string{"Idempotency-Key": "spec-1"}, 422},
		{"POST", wallet + "/credit", `{"amount": 1000000000000000}`, nil, 200},
		{"POST", wallet + "/credit", `{"amount": 1000000000000001}`, nil, 400},
		{"POST", wallet + "/credit", `{"amount": 2.5}`, nil, 400},
		{"POST", wallet + "/credit", `{"amount": 5, "note": "x"}`, nil, 400},
		{"POST", wallet + "/credit", `{"amount": 1}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400},
		{"POST", wallet + "/debit", `{"amount": ` + strings.Repeat("1", 70_000) + `}`, nil, 413},
		{"POST", "/wallet/not-a-ksuid/credit", `{"amount": 5}`, nil, 400},
		{"GET", wallet + "/credit", "", nil, 405},
		{"GET", wallet + "/balance", "", nil, 200},
		{"HEAD", wallet + "/balance", "", nil, 200},
		{"GET", "/wallet/" + fresh + "/balance", "", nil, 200},
		{"GET", "/wallet/nope/balance", "", nil, 400},
		{"POST", "/transfers", `{"from": "` + w + `", "to": "` + other + `", "amount": 7, "reference": "spec"}`, map[string]string{"Idempotency-Key": "spec-t"}, 200},
		{"POST", "/transfers", `{"from": "` + w + `", "to": "` + other + `", "amount": 7, "reference": "spec"}`, map[string]string{"Idempotency-Key": "spec-t"}, 200},
		{"POST", "/transfers", `{"from": "` + other + `", "to": "` + w + `", "amount": 8}`, nil, 409},
		{"POST", "/transfers", `{"from": "` + w + `", "to": "` + w + `", "amount": 8}`, nil, 400},
		{"GET", "/transfers/" + fresh, "", nil, 404},
		{"GET", "/transfers/nope", "", nil, 400},
		{"GET", "/transfers", "", nil, 405},
		{"GET", "/wallet/" + other + "/transactions", "", nil, 200},
		{"GET", wallet + "/transactions", "", nil, 200},
		{"GET", wallet + "/transactions?limit=1&include=rejected", "", nil, 200},
		{"GET", wallet + "/transactions?limit=0", "", nil, 400},
		{"GET", wallet + "/transactions?include=all", "", nil, 400},
		{"HEAD", wallet + "/transactions", "", nil, 200},
		{"GET", wallet, "", nil, 200},
		{"HEAD", wallet, "", nil, 200},
		{"GET", "/wallet/" + fresh, "", nil, 404},
		{"POST", "/wallet", `{"owner": "ann@example.com", "metadata": {"tier": "gold"}, "overdraft_limit": 100}`, nil, 201},
		{"POST", "/wallet", `{"overdraft_limit": 2.5}`, nil, 400},
		{"POST", "/wallet", `{"owner": "x"}`, map[string]string{"Idempotency-Key": "spec-open"}, 201},
		{"POST", "/wallet", `{"owner": "x"}`, map[string]string{"Idempotency-Key": "spec-open"}, 201},
		{"POST", "/wallet", `{"owner": "y"}`, map[string]string{"Idempotency-Key": "spec-open"}, 422},
		{"PATCH", wallet, `{"owner": "bob", "metadata": {"a": "1", "b": null}}`, nil, 200},
		{"PATCH", wallet, `{}`, nil, 400},
		{"PATCH", "/wallet/" + fresh, `{"owner": "x"}`, nil, 404},
		{"POST", wallet + "/freeze", "", nil, 200},
		{"POST", wallet + "/freeze", "", nil, 409},
		{"POST", wallet + "/unfreeze", "", nil, 200},
		{"POST", wallet + "/close", "", nil, 409},
		{"POST", wallet + "/close", `{"now": true}`, nil, 400},
		{"POST", "/wallet/" + fresh + "/close", "", nil, 404},
		{"POST", "/api", `{"command": "account_deposit", "data": {"account_id": "` + w + `", "amount": 1}}`, nil, 200},
		{"POST", "/api", `{"command": "account_open", "data": {"account_owner_email": "a@b.c"}}`, nil, 201},
		{"POST", "/api", `{"command": "wallet_freeze", "data": {"wallet_id": "` + w + `"}}`, nil, 200},
		{"POST", "/api", `{"command": "wallet_freeze", "data": {"wallet_id": "` + w + `"}}`, nil, 409},
		{"POST", "/api", `{"command": "wallet_close", "data": {"wallet_id": "` + fresh + `"}}`, nil, 404},
		{"POST", "/api", `{"command": "steal"}`, nil, 400},
		{"GET", "/api", "", nil, 405},
		{"GET", "/status", "", nil, 200},
		{"GET", "/status?x=1", "", nil, 400},
		{"GET", "/", "", nil, 200},
		{"GET", "/console/", "", nil, 200},
		{"GET", "/console/console.js", "", nil, 200},
		{"GET", "/console/console.css", "", nil, 200},
		{"GET", "/console/nope.js", "", nil, 404},
		{"GET", "/healthz", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/metrics", "", nil, 200},
		{"GET", "/no/such/thing", "", nil, 404},
	}
	check := func(c call) {
		t.Helper()
		st, hdr, body := s.do(c.method, c.path, c.body, c.hdr)
		if st != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, st, c.want, body)
		}
		if hdr.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no X-Request-Id", c.method, c.path)
		}
		for _, e := range o.check(c.method, strings.SplitN(c.path, "?", 2)[0], st, hdr, body) {
			t.Error(e)
		}
	}
	for _, c := range calls {
		check(c)
	}
	// A transfer, and its hold on the wallet it left.
	_, _, body := s.do("GET", "/wallet/"+other+"/transactions", "", nil)
	var in struct {
		Transactions []struct {
			TransferID string `json:"transfer_id"`
		}
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.Transactions) != 1 {
		t.Fatalf("the transfer on the statement: %s", body)
	}
	check(call{"GET", "/transfers/" + in.Transactions[0].TransferID, "", nil, 200})
	check(call{"HEAD", "/transfers/" + in.Transactions[0].TransferID, "", nil, 200})
	check(call{"GET", wallet + "/holds/transfer:" + in.Transactions[0].TransferID, "", nil, 200})
	check(call{"POST", "/transfers/" + in.Transactions[0].TransferID + "/reverse", "", nil, 200})
	check(call{"POST", "/transfers/" + in.Transactions[0].TransferID + "/reverse", "", nil, 409})
	check(call{"POST", "/transfers/" + fresh + "/reverse", "", nil, 404})

	// The shop: items, a page of them, orders completed and failed.
	_, _, body = s.do("POST", "/items", `{"name": "Spec mug", "price": 100, "stock": 1}`, nil)
	var it struct {
		ItemID string `json:"item_id"`
	}
	if err := json.Unmarshal(body, &it); err != nil || it.ItemID == "" {
		t.Fatalf("add an item: %s", body)
	}
	item := "/items/" + it.ItemID
	buyer := ksuid.New().String()
	s.do("POST", "/wallet/"+buyer+"/credit", `{"amount": 150}`, nil)
	for _, c := range []call{
		{"POST", "/items", `{"name": "Spec pot", "price": 5}`, map[string]string{"Idempotency-Key": "spec-item"}, 201},
		{"POST", "/items", `{"name": "Spec pot", "price": 5}`, map[string]string{"Idempotency-Key": "spec-item"}, 201},
		{"POST", "/items", `{"name": "", "price": 5}`, nil, 400},
		{"GET", "/items", "", nil, 200},
		{"GET", "/items?limit=1", "", nil, 200},
		{"HEAD", "/items", "", nil, 200},
		{"GET", "/items?limit=0", "", nil, 400},
		{"GET", item, "", nil, 200},
		{"HEAD", item, "", nil, 200},
		{"GET", "/items/" + fresh, "", nil, 404},
		{"GET", "/items/nope", "", nil, 400},
		{"PATCH", item, `{"price": 100}`, nil, 200},
		{"PATCH", item, `{}`, nil, 400},
		{"POST", item + "/restock", `{"quantity": 1}`, nil, 200},
		{"POST", "/items/" + fresh + "/restock", `{"quantity": 1}`, nil, 404},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": [{"item_id": "` + it.ItemID + `", "quantity": 1}]}`, nil, 200},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": [{"item_id": "` + it.ItemID + `", "quantity": 1}]}`, nil, 409},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": [{"item_id": "` + it.ItemID + `", "quantity": 5}]}`, nil, 409},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": [{"item_id": "` + fresh + `", "quantity": 1}]}`, nil, 404},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": []}`, nil, 400},
		{"GET", "/orders/" + fresh, "", nil, 404},
		{"GET", "/orders/nope", "", nil, 400},
		{"GET", "/orders", "", nil, 405},
		{"POST", "/api", `{"command": "item_restock", "data": {"item_id": "` + it.ItemID + `", "quantity": 1}}`, nil, 200},
		{"POST", "/api", `{"command": "item_add", "data": {"name": "Spec cup", "price": 1}}`, nil, 201},
	} {
		check(c)
	}
	_, placed, _ := s.do("POST", "/orders", `{"wallet_id": "`+buyer+`", "lines": [{"item_id": "`+it.ItemID+`", "quantity": 1}]}`, nil)
	check(call{"GET", placed.Get("Location"), "", nil, 200})
	check(call{"HEAD", placed.Get("Location"), "", nil, 200})

	// The event streams' refusals (their streams are checked in
	// TestEventStreams).
	for _, c := range []call{
		{"GET", "/events?domain=nope", "", nil, 400},
		{"GET", "/wallet/nope/events", "", nil, 400},
		{"GET", "/transfers/nope/events", "", nil, 400},
		{"GET", "/orders/nope/events", "", nil, 400},
		{"POST", "/events", "", nil, 405},
	} {
		check(c)
	}

	// A page with a next cursor, and following it.
	_, _, body = s.do("GET", wallet+"/transactions?limit=2", "", nil)
	var page struct{ Next *string }
	if err := json.Unmarshal(body, &page); err != nil || page.Next == nil {
		t.Fatalf("first page of 2: %s", body)
	}
	check(call{"GET", wallet + "/transactions?limit=2&cursor=" + *page.Next, "", nil, 200})

	// The answers of a stack without a writer, then without Redis.
	s.stop("wallet_writer")
	check(call{"POST", wallet + "/credit", `{"amount": 5}`, nil, 503})
	check(call{"GET", "/readyz", "", nil, 503})
	s.redis.Stop()
	check(call{"GET", wallet + "/balance", "", nil, 503})
	check(call{"GET", wallet + "/transactions", "", nil, 503})
}

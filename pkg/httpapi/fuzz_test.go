package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/order"
	"coffer/pkg/readmodel"
	"coffer/pkg/transfer"
	"coffer/pkg/wallet"
)

// sent records what the API would hand to the writer. It stands at the API's
// own consumer interface, so the fuzzer can run millions of requests; the
// real path over NATS is covered by the end-to-end bad-input test.
type sent struct {
	calls   []bus.Command
	actions []string
}

func (s *sent) Send(_ context.Context, domain, id, action string, cmd bus.Command) (bus.Reply, bool, error) {
	s.calls = append(s.calls, cmd)
	s.actions = append(s.actions, domain+"."+action)
	res, _ := json.Marshal(wallet.Result{WalletID: id, Version: 1})
	return bus.Reply{Result: res}, false, nil
}

func (s *sent) PingWriter(context.Context) error { return nil }

func (s *sent) Watch(string, string) (<-chan struct{}, func(), error) { return nil, func() {}, nil }

func (s *sent) Follow(context.Context, []string, uint64) (<-chan bus.Delivered, error) {
	return nil, errors.New("no event stream here")
}

func (s *sent) WriterHealth(context.Context, time.Duration) ([]bus.WriterHealth, error) {
	return nil, nil
}

// served serves req, whose body is body, and returns the answer and the one
// command the server passed on to a writer, nil if it passed none on: then
// its answer must be a problem, 4xx. It fails on a 5xx, on more than one
// command, and on one that is not the action want ("domain.action").
func served(t *testing.T, h http.Handler, rec *sent, req *http.Request, body []byte, want string) (*httptest.ResponseRecorder, *bus.Command) {
	t.Helper()
	rec.calls, rec.actions = rec.calls[:0], rec.actions[:0]
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code >= 500 {
		t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
	}
	if len(rec.calls) == 0 {
		if w.Code < 400 || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("nothing sent but status %d %q for %q", w.Code, w.Header().Get("Content-Type"), body)
		}
		return w, nil
	}
	if len(rec.calls) != 1 || rec.actions[0] != want {
		t.Fatalf("sent %v for %q, want one %s", rec.actions, body, want)
	}
	return w, &rec.calls[0]
}

type noReads struct{}

func (noReads) State(context.Context, string, string) ([]byte, error) { return nil, nil }
func (noReads) List(context.Context, string, string, []string, int64, int) (readmodel.Page, error) {
	return readmodel.Page{}, nil
}
func (noReads) Ping(context.Context) error { return nil }
func (noReads) Field(context.Context, string, string, string, string) ([]byte, error) {
	return nil, nil
}
func (noReads) Index(context.Context, string, string, int) (readmodel.IndexPage, error) {
	return readmodel.IndexPage{}, nil
}

// FuzzCommandBody sends arbitrary bodies and Idempotency-Keys to the credit
// route: the API never answers 500 or panics, refuses with problem+json, and
// passes a command on only for a body that is exactly {"amount": <whole
// number from 1 to 10^15>}.
func FuzzCommandBody(f *testing.F) {
	for _, seed := range []struct{ body, key string }{
		{`{"amount": 5}`, ""}, {`{"amount": 5.0}`, "k"}, {`{"amount": 2.5}`, ""}, {`{"amount": "5"}`, ""},
		{`{"amount": 1e16}`, ""}, {`{"amount": 1e15}`, ""}, {`{}`, ""}, {`{"amount": 5, "x": 1}`, ""},
		{`{"amount": 5`, ""}, {``, ""}, {`[5]`, ""}, {`null`, ""}, {`{"amount": -0}`, ""},
		{`{"amount": 1e999999999}`, ""}, {`{"amount": 5}{"amount": 5}`, ""}, {`{"amount": 5}`, "\x00"},
		{`{"AMOUNT": 5}`, ""}, {`{"amount": 5, "amount": 6}`, ""},
	} {
		f.Add([]byte(seed.body), seed.key)
	}
	rec := &sent{}
	h := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), noReads{}, rec, time.Now, nil, Limits{})
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		req := httptest.NewRequest("POST", "/wallet/2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ/credit", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if key != "" {
			req.Header["Idempotency-Key"] = []string{key}
		}
		w, sentCmd := served(t, h, rec, req, body, "wallet.credit")
		if sentCmd == nil {
			return
		}
		if w.Code != http.StatusOK {
			t.Fatalf("sent a credit, status %d, for %q", w.Code, body)
		}
		// What was sent, as the wallet domain reads it in the writer, must
		// be what a strict reader sees in the body.
		cmd, perr := wallet.Domain{}.DecodeCommand("credit", sentCmd.Data)
		if perr != nil {
			t.Fatalf("sent data %s the wallet domain refuses: %v", rec.calls[0].Data, perr)
		}
		amount := cmd.Amount
		if amount < 1 || amount > wallet.MaxAmount || cmd.Action != wallet.Credit {
			t.Fatalf("sent amount %d for %q", amount, body)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil || len(fields) != 1 || fields["amount"] == nil {
			t.Fatalf("sent amount %d for a body that is not {\"amount\": N}: %q", amount, body)
		}
		var f float64
		if err := json.Unmarshal(fields["amount"], &f); err != nil || f != float64(amount) {
			t.Fatalf("sent %d for amount %s", amount, fields["amount"])
		}
		if key != "" && (len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e })) {
			t.Fatalf("sent a command with the invalid Idempotency-Key %q", key)
		}
	})
}

// FuzzTransferBody sends arbitrary bodies to POST /transfers: the API never
// answers 500 or panics, refuses with problem+json, and passes a request on
// only when the transfer domain, in the writer, would take its data: two
// different wallets and an amount from 1 to 10^15.
func FuzzTransferBody(f *testing.F) {
	const a, b = "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aY"
	for _, seed := range []string{
		`{"from": "` + a + `", "to": "` + b + `", "amount": 5}`, `{"from": "` + a + `", "to": "` + a + `", "amount": 5}`,
		`{"from": "` + a + `", "to": "` + b + `", "amount": 5, "reference": "r"}`, `{"from": "` + a + `", "to": "` + b + `", "amount": 2.5}`,
		`{"from": "` + a + `", "to": "` + b + `", "amount": 5, "reversal_of": "` + a + `"}`, `{"from": 5, "to": null}`,
		`{"from": "` + a + `", "to": "` + b + `", "amount": 5, "reference": 7}`, `{}`, ``, `[]`,
		`{"from": "` + a + `", "from": "` + b + `", "to": "` + b + `", "amount": 5}`,
	} {
		f.Add([]byte(seed))
	}
	rec := &sent{}
	h := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), noReads{}, rec, time.Now, nil, Limits{})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, sentCmd := served(t, h, rec, httptest.NewRequest("POST", "/transfers", bytes.NewReader(body)), body, "transfer.request")
		if sentCmd == nil {
			return
		}
		cmd, perr := transfer.Domain{}.DecodeCommand("request", sentCmd.Data)
		if perr != nil {
			t.Fatalf("sent data %s the transfer domain refuses: %v", sentCmd.Data, perr)
		}
		if cmd.From == cmd.To || cmd.Amount < 1 || cmd.Amount > transfer.MaxAmount || cmd.ReversalOf != "" {
			t.Fatalf("sent %+v for %q", cmd, body)
		}
	})
}

// FuzzOrderBody: POST /orders never crashes and never sends an order the
// order domain would refuse: one place command, or a problem and nothing
// sent.
func FuzzOrderBody(f *testing.F) {
	const w, i, j = "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aY", "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aX"
	for _, seed := range []string{
		`{"wallet_id": "` + w + `", "lines": [{"item_id": "` + i + `", "quantity": 2}]}`,
		`{"wallet_id": "` + w + `", "lines": [{"item_id": "` + i + `", "quantity": 2}, {"item_id": "` + j + `", "quantity": 1e2}]}`,
		`{"wallet_id": "` + w + `", "lines": [{"item_id": "` + i + `", "quantity": 1}, {"item_id": "` + i + `", "quantity": 1}]}`,
		`{"wallet_id": "` + w + `", "lines": [{"item_id": "` + i + `", "quantity": 0.5}]}`,
		`{"wallet_id": "` + w + `", "lines": []}`, `{"wallet_id": "` + w + `", "lines": [{}]}`, `{"lines": null}`,
		`{"wallet_id": "` + order.DefaultShopWalletID + `", "lines": [{"item_id": "` + i + `", "quantity": 2}]}`, `{}`, ``, `[]`,
	} {
		f.Add([]byte(seed))
	}
	rec := &sent{}
	h := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), noReads{}, rec, time.Now, nil, Limits{})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, sentCmd := served(t, h, rec, httptest.NewRequest("POST", "/orders", bytes.NewReader(body)), body, "order.place")
		if sentCmd == nil {
			return
		}
		if _, perr := (order.Domain{}).DecodeCommand("place", sentCmd.Data); perr != nil {
			t.Fatalf("sent data %s the order domain refuses: %v", sentCmd.Data, perr)
		}
	})
}

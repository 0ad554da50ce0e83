package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"coffer/pkg/readmodel"
)

// oneState is a read model holding one stored state.
type oneState []byte

func (s oneState) State(context.Context, string, string) ([]byte, error) { return s, nil }
func (oneState) List(context.Context, string, string, []string, int64, int) (readmodel.Page, error) {
	return readmodel.Page{}, nil
}
func (oneState) Ping(context.Context) error { return nil }
func (oneState) Field(context.Context, string, string, string, string) ([]byte, error) {
	return nil, nil
}
func (oneState) Index(context.Context, string, string, int) (readmodel.IndexPage, error) {
	return readmodel.IndexPage{}, nil
}

// BenchmarkBalance is the balance read through the whole handler chain —
// request id, route, metrics, decoding the stored state, the response —
// with the state as the writer stores it for a wallet that only took
// credits and debits.
func BenchmarkBalance(b *testing.B) {
	state := oneState(`{"wallet_id":"2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm","balance":81774,"version":81774,"updated_at":"2026-12-02T16:32:35.066376757Z","created_at":"2026-12-02T16:32:25.055947769Z"}`)
	h := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), state, &sent{}, time.Now, nil, Limits{})
	req := httptest.NewRequest("GET", "/wallet/2Qd2Xb6pRRG2d0lLuY5kVV9ZyAm/balance", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

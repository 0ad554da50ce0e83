package e2e

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/wallet"
)

// balanceOf is a wallet's balance, available and held as GET balance answers.
type balanceOf struct {
	Balance, Available, Held, Version int64
}

func (s *stack) balanceOf(t *testing.T, id string) balanceOf {
	t.Helper()
	return decode[balanceOf](t, step{"GET", "/wallet/" + id + "/balance", "", nil, 200, ""}.run(t, s))
}

// TestHolds drives holds through the API as curl would: a hold lowers what
// is available and not the balance; debits and holds are checked against
// what is available; a capture debits what it takes and releases the rest;
// a hold ends once; an Idempotency-Key replays the first answer; refusals
// are 409s recorded in the log; bad input is refused with its code.
func TestHolds(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	w := "/wallet/" + id
	step{"POST", w + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)

	status, hdr, body := s.do("POST", w+"/holds", `{"amount": 60, "expires_in": 300}`, map[string]string{"Idempotency-Key": "h-1"})
	if status != http.StatusCreated {
		t.Fatalf("hold: %d %s", status, body)
	}
	h := decode[wallet.HoldResult](t, body)
	if hdr.Get("Location") != w+"/holds/"+h.HoldID || h.WalletID != id || h.Amount != 60 || h.Status != wallet.StatusHeld ||
		h.Balance != 100 || h.Available != 40 || h.Held != 60 || h.Version != 2 ||
		h.ExpiresAt.Sub(h.CreatedAt) != 300*time.Second {
		t.Fatalf("hold answered %s (Location %q)", body, hdr.Get("Location"))
	}
	again, ahdr, abody := s.do("POST", w+"/holds", `{"amount": 60, "expires_in": 300}`, map[string]string{"Idempotency-Key": "h-1"})
	if again != 201 || ahdr.Get(httpapi.ReplayedHeader) != "true" || string(abody) != string(body) {
		t.Fatalf("a retry under the same key: %d %q %s", again, ahdr.Get(httpapi.ReplayedHeader), abody)
	}
	if b := s.balanceOf(t, id); b != (balanceOf{Balance: 100, Available: 40, Held: 60, Version: 2}) {
		t.Fatalf("balance with a hold: %+v", b)
	}
	got := decode[wallet.HoldView](t, step{"GET", w + "/holds/" + h.HoldID, "", nil, 200, ""}.run(t, s))
	if !reflect.DeepEqual(got, h.HoldView) {
		t.Fatalf("GET hold %+v, the hold answered %+v", got, h.HoldView)
	}

	hp := w + "/holds/" + h.HoldID
	for _, st := range []step{
		{"POST", w + "/debit", `{"amount": 41}`, nil, 409, bus.CodeInsufficientFunds},
		{"POST", w + "/holds", `{"amount": 41}`, nil, 409, bus.CodeInsufficientFunds},
		{"POST", w + "/close", "", nil, 409, bus.CodeHoldsActive},
		{"POST", hp + "/capture", `{"amount": 61}`, nil, 409, bus.CodeCaptureExceeds},
		{"POST", w + "/holds", `{"amount": 0}`, nil, 400, bus.CodeInvalidAmount},
		{"POST", w + "/holds", `{"amount": 2.5}`, nil, 400, bus.CodeInvalidAmount},
		{"POST", w + "/holds", `{}`, nil, 400, bus.CodeInvalidAmount},
		{"POST", w + "/holds", ``, nil, 400, bus.CodeInvalidBody},
		{"POST", w + "/holds", `{"amount": 1, "expires_in": 0}`, nil, 400, bus.CodeInvalidExpiry},
		{"POST", w + "/holds", `{"amount": 1, "expires_in": 604801}`, nil, 400, bus.CodeInvalidExpiry},
		{"POST", w + "/holds", `{"amount": 1, "expires_in": "60"}`, nil, 400, bus.CodeInvalidExpiry},
		{"POST", w + "/holds", `{"amount": 1, "until": 5}`, nil, 400, bus.CodeInvalidBody},
		{"POST", w + "/holds/nope/capture", "", nil, 409, bus.CodeHoldNotActive},
		{"GET", w + "/holds/nope", "", nil, 404, bus.CodeHoldNotFound},
		{"GET", w + "/holds/a%20b", "", nil, 400, bus.CodeInvalidHoldID},
		{"POST", hp + "/capture", `{"amount": -1}`, nil, 400, bus.CodeInvalidAmount},
		{"POST", hp + "/capture", `{"amount": 1, "x": 1}`, nil, 400, bus.CodeInvalidBody},
		{"POST", hp + "/void", `{"amount": 1}`, nil, 400, bus.CodeInvalidBody},
		{"POST", "/wallet/nope/holds", `{"amount": 1}`, nil, 400, bus.CodeInvalidWalletID},
		{"DELETE", hp, "", nil, 405, bus.CodeMethodNotAllowed},
	} {
		st.run(t, s)
	}

	captured := decode[wallet.HoldResult](t, step{"POST", hp + "/capture", `{"amount": 25}`, map[string]string{"Idempotency-Key": "c-1"}, 200, ""}.run(t, s))
	if captured.Status != wallet.StatusCaptured || captured.Captured != 25 || captured.Amount != 60 || captured.Balance != 75 ||
		captured.Available != 75 || captured.Held != 0 {
		t.Fatalf("capture of 25: %+v", captured)
	}
	step{"POST", hp + "/capture", `{"amount": 25}`, map[string]string{"Idempotency-Key": "c-1"}, 200, ""}.run(t, s) // a retry: the first answer
	for _, st := range []step{
		{"POST", hp + "/capture", "", nil, 409, bus.CodeHoldNotActive},
		{"POST", hp + "/void", "", nil, 409, bus.CodeHoldNotActive},
	} {
		st.run(t, s)
	}
	if got := decode[wallet.HoldView](t, step{"GET", hp, "", nil, 200, ""}.run(t, s)); got.Status != wallet.StatusCaptured || got.Captured != 25 {
		t.Fatalf("GET of a captured hold: %+v", got)
	}

	// A void gives everything back; the statement shows the capture, and
	// with ?include=rejected the refused hold.
	h2 := decode[wallet.HoldResult](t, step{"POST", w + "/holds", `{"amount": 75}`, nil, 201, ""}.run(t, s))
	if v := decode[wallet.HoldResult](t, step{"POST", w + "/holds/" + h2.HoldID + "/void", "{}", nil, 200, ""}.run(t, s)); v.Status != wallet.StatusVoided || v.Available != 75 {
		t.Fatalf("void: %+v", v)
	}
	if b := s.balanceOf(t, id); b.Balance != 75 || b.Available != 75 || b.Held != 0 {
		t.Fatalf("balance after the capture and the void: %+v", b)
	}
	page := decode[struct{ Transactions []wallet.Transaction }](t, step{"GET", w + "/transactions?include=rejected", "", nil, 200, ""}.run(t, s))
	var kinds []string
	for _, tx := range page.Transactions {
		kinds = append(kinds, string(tx.Type))
	}
	if strings.Join(kinds, ",") != "hold_captured,hold_rejected,debit_rejected,credited" || page.Transactions[0].Amount != -25 ||
		page.Transactions[0].HoldID != h.HoldID {
		t.Fatalf("statement: %v %+v", kinds, page.Transactions)
	}
	// The same through /api.
	h3 := decode[wallet.HoldResult](t, step{"POST", "/api", `{"command": "wallet_hold", "data": {"wallet_id": "` + id + `", "amount": 5}}`, nil, 201, ""}.run(t, s))
	step{"POST", "/api", `{"command": "wallet_capture", "data": {"wallet_id": "` + id + `", "hold_id": "` + h3.HoldID + `", "amount": 2}}`, nil, 200, ""}.run(t, s)
	step{"POST", "/api", `{"command": "wallet_void", "data": {"wallet_id": "` + id + `", "hold_id": "` + h3.HoldID + `"}}`, nil, 409, bus.CodeHoldNotActive}.run(t, s)
	step{"POST", "/api", `{"command": "wallet_void", "data": {"wallet_id": "` + id + `"}}`, nil, 400, bus.CodeInvalidHoldID}.run(t, s)
	if b := s.balanceOf(t, id); b.Balance != 73 || b.Held != 0 {
		t.Fatalf("balance after /api: %+v", b)
	}
	db := s.writerDB()
	if n := queryInt(t, db, `SELECT COUNT(*) FROM events WHERE stream_id = ? AND type IN ('held', 'hold_captured', 'hold_voided', 'hold_rejected', 'command_rejected')`, id); n != 12 {
		t.Fatalf("%d hold events in the log, want 12", n)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// A hold expires by itself, at most a second or two late — also when its
// expiry passed while no writer ran: the writer expires it when it starts.
func TestHoldsExpire(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	w := "/wallet/" + id
	step{"POST", w + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)
	h := decode[wallet.HoldResult](t, step{"POST", w + "/holds", `{"amount": 30, "expires_in": 1}`, nil, 201, ""}.run(t, s))
	eventually(t, 5*time.Second, "the hold to expire", func() bool { return s.balanceOf(t, id).Held == 0 })
	got := decode[wallet.HoldView](t, step{"GET", w + "/holds/" + h.HoldID, "", nil, 200, ""}.run(t, s))
	if late := got.UpdatedAt.Sub(*h.ExpiresAt); got.Status != wallet.StatusExpired || late < 0 || late > 2*time.Second {
		t.Fatalf("expired hold %+v, %s after its expiry", got, late)
	}
	step{"POST", w + "/holds/" + h.HoldID + "/capture", "", nil, 409, bus.CodeHoldNotActive}.run(t, s)

	// Across a restart: the writer is down when the hold's time comes.
	h2 := decode[wallet.HoldResult](t, step{"POST", w + "/holds", `{"amount": 40, "expires_in": 2}`, nil, 201, ""}.run(t, s))
	s.stop("wallet_writer")
	time.Sleep(time.Until(*h2.ExpiresAt) + 500*time.Millisecond) // the hold's time passes while no writer runs
	s.start("wallet_writer")
	eventually(t, 15*time.Second, "the hold to expire once the writer is back", func() bool {
		status, _, body := s.do("GET", w+"/holds/"+h2.HoldID, "", nil)
		return status == 200 && strings.Contains(string(body), `"status":"expired"`)
	})
	if b := s.balanceOf(t, id); b.Balance != 100 || b.Available != 100 || b.Held != 0 {
		t.Fatalf("balance after the expiries: %+v", b)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/wallet"
)

// TestTransactionReversals takes back a credit and a debit through the
// API: a compensating entry linked to the original, at most once; taking
// back a credit the wallet no longer has is refused as a debit would be,
// and recorded; a hold's capture, a transfer's leg or an id the wallet does
// not hold cannot be reversed.
func TestTransactionReversals(t *testing.T) {
	s := startStack(t)
	id := ksuid.New().String()
	w := "/wallet/" + id
	credit := decode[result](t, step{"POST", w + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)).Transaction
	debit := decode[result](t, step{"POST", w + "/debit", `{"amount": 30}`, nil, 200, ""}.run(t, s)).Transaction

	key := map[string]string{"Idempotency-Key": "undo-debit"}
	status, hdr, body := s.do("POST", w+"/transactions/"+debit.ID+"/reverse", "", key)
	r := decode[result](t, body)
	if status != http.StatusOK || r.Balance != 100 || r.Transaction.Type != wallet.Reversal || r.Transaction.Amount != 30 || r.Transaction.Reverses != debit.ID {
		t.Fatalf("reversal of the debit: %d %s", status, body)
	}
	status, hdr, body = s.do("POST", w+"/transactions/"+debit.ID+"/reverse", "", key)
	if status != http.StatusOK || hdr.Get(httpapi.ReplayedHeader) != "true" || decode[result](t, body).Balance != 100 {
		t.Fatalf("retry: %d %v %s", status, hdr, body)
	}
	step{"POST", w + "/transactions/" + debit.ID + "/reverse", "", nil, 409, bus.CodeAlreadyReversed}.run(t, s)

	// The credit of 100, with 60 of it spent: refused as a debit, recorded.
	step{"POST", w + "/debit", `{"amount": 60}`, nil, 200, ""}.run(t, s)
	step{"POST", w + "/transactions/" + credit.ID + "/reverse", "", nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	step{"POST", w + "/credit", `{"amount": 60}`, nil, 200, ""}.run(t, s)
	if r := decode[result](t, step{"POST", w + "/transactions/" + credit.ID + "/reverse", "{}", nil, 200, ""}.run(t, s)); r.Balance != 0 || r.Transaction.Amount != -100 {
		t.Fatalf("reversal of the credit: %+v", r)
	}
	page := decode[txPage](t, step{"GET", w + "/transactions?include=rejected", "", nil, 200, ""}.run(t, s))
	var kinds []string
	for _, tx := range page.Transactions {
		kinds = append(kinds, string(tx.Type))
	}
	if strings.Join(kinds, ",") != "reversal,credited,reversal_rejected,debited,reversal,debited,credited" || page.Transactions[2].Reverses != credit.ID {
		t.Fatalf("statement: %v %+v", kinds, page.Transactions)
	}

	// What cannot be reversed.
	other := ksuid.New().String()
	step{"POST", "/wallet/" + other + "/credit", `{"amount": 10}`, nil, 200, ""}.run(t, s)
	step{"POST", "/transfers", transferBody(other, id, 5, ""), nil, 200, ""}.run(t, s)
	leg := decode[txPage](t, step{"GET", w + "/transactions", "", nil, 200, ""}.run(t, s)).Transactions[0]
	if leg.Type != wallet.TransferredIn {
		t.Fatalf("newest entry %+v", leg)
	}
	for _, c := range []step{
		{"POST", w + "/transactions/" + leg.ID + "/reverse", "", nil, 409, bus.CodeNotReversible},
		{"POST", w + "/transactions/" + ksuid.New().String() + "/reverse", "", nil, 404, bus.CodeTransactionNotFound},
		{"POST", "/wallet/" + other + "/transactions/" + credit.ID + "/reverse", "", nil, 404, bus.CodeTransactionNotFound},
		{"POST", w + "/transactions/nope/reverse", "", nil, 400, bus.CodeInvalidTransactionID},
		{"POST", w + "/transactions/" + credit.ID + "/reverse", `{"amount": 1}`, nil, 400, bus.CodeInvalidBody},
		{"GET", w + "/transactions/" + credit.ID + "/reverse", "", nil, 405, bus.CodeMethodNotAllowed},
	} {
		c.run(t, s)
	}
	if got := s.balanceOf(t, id); got.Balance != 5 {
		t.Fatalf("balance %+v", got)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/transfer"
	"coffer/pkg/wallet"
)

// failedTransfer is the problem of a failed transfer.
type failedTransfer struct {
	httpapi.Problem
	Transfer transfer.View `json:"transfer"`
}

func transferBody(from, to string, amount int64, more string) string {
	return fmt.Sprintf(`{"from": %q, "to": %q, "amount": %d%s}`, from, to, amount, more)
}

// TestTransfers drives transfers as curl would: a completed transfer moves
// the money and shows on both statements with the other wallet; a retry
// under the same key answers the first outcome; a transfer the wallet
// cannot fund, or one to a closed wallet, fails with its code and leaves no
// money held; a transfer not decided within TRANSFER_WAIT is 202 with its
// Location; bad input is refused with its code; verify finds nothing wrong.
func TestTransfers(t *testing.T) {
	s := startStack(t)
	a, b := ksuid.New().String(), ksuid.New().String()
	step{"POST", "/wallet/" + a + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)

	key := map[string]string{"Idempotency-Key": "t-1"}
	status, hdr, body := s.do("POST", "/transfers", transferBody(a, b, 30, `, "reference": "rent"`), key)
	if status != http.StatusOK {
		t.Fatalf("transfer: %d %s", status, body)
	}
	v := decode[transfer.View](t, body)
	var steps []string
	for _, st := range v.Steps {
		steps = append(steps, string(st.Step))
	}
	if v.Status != transfer.StatusCompleted || v.From != a || v.To != b || v.Amount != 30 || v.Reference != "rent" ||
		strings.Join(steps, ",") != "requested,held,credited,completed" || hdr.Get("Location") != "/transfers/"+v.TransferID {
		t.Fatalf("transfer answered %s (Location %q)", body, hdr.Get("Location"))
	}
	if got := s.balanceOf(t, a); got.Balance != 70 || got.Held != 0 {
		t.Fatalf("balance of the wallet the money left: %+v", got)
	}
	if got := s.balanceOf(t, b); got.Balance != 30 {
		t.Fatalf("balance of the wallet the money reached: %+v", got)
	}
	out := decode[txPage](t, step{"GET", "/wallet/" + a + "/transactions", "", nil, 200, ""}.run(t, s)).Transactions[0]
	in := decode[txPage](t, step{"GET", "/wallet/" + b + "/transactions", "", nil, 200, ""}.run(t, s)).Transactions[0]
	if out.Type != wallet.TransferredOut || out.Amount != -30 || out.TransferID != v.TransferID || out.Counterpart != b || out.BalanceAfter != 70 {
		t.Fatalf("statement of %s: %+v", a, out)
	}
	if in.Type != wallet.TransferredIn || in.Amount != 30 || in.TransferID != v.TransferID || in.Counterpart != a || in.BalanceAfter != 30 {
		t.Fatalf("statement of %s: %+v", b, in)
	}
	if got := decode[transfer.View](t, step{"GET", "/transfers/" + v.TransferID, "", nil, 200, ""}.run(t, s)); got.Status != transfer.StatusCompleted || got.Version != 4 {
		t.Fatalf("GET the transfer: %+v", got)
	}

	// The same key: the same transfer, not a second one; with another
	// request, refused.
	status, hdr, body = s.do("POST", "/transfers", transferBody(a, b, 30, `, "reference": "rent"`), key)
	if status != http.StatusOK || hdr.Get(httpapi.ReplayedHeader) != "true" || decode[transfer.View](t, body).TransferID != v.TransferID {
		t.Fatalf("retry: %d %v %s", status, hdr, body)
	}
	step{"POST", "/transfers", transferBody(a, b, 31, ""), key, 422, bus.CodeIdempotencyKeyReused}.run(t, s)
	if got := s.balanceOf(t, a); got.Balance != 70 {
		t.Fatalf("a retry moved money: %+v", got)
	}

	// Refusals: the problem carries the transfer; nothing stays held.
	body = step{"POST", "/transfers", transferBody(a, b, 71, ""), nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	if f := decode[failedTransfer](t, body).Transfer; f.Status != transfer.StatusFailed || f.Code != string(bus.CodeInsufficientFunds) || f.TransferID == "" {
		t.Fatalf("failed transfer: %s", body)
	}
	c := decode[wallet.Wallet](t, step{"POST", "/wallet", "", nil, 201, ""}.run(t, s)).WalletID
	step{"POST", "/wallet/" + c + "/close", "", nil, 200, ""}.run(t, s)
	body = step{"POST", "/transfers", transferBody(a, c, 10, ""), nil, 409, bus.CodeWalletClosed}.run(t, s)
	failed := decode[failedTransfer](t, body).Transfer
	if len(failed.Steps) != 4 || failed.Steps[2].Step != transfer.CreditRefused {
		t.Fatalf("a transfer to a closed wallet: %s", body)
	}
	if got := s.balanceOf(t, a); got.Balance != 70 || got.Held != 0 || got.Available != 70 {
		t.Fatalf("after two failed transfers: %+v", got)
	}
	hold := decode[wallet.HoldView](t, step{"GET", "/wallet/" + a + "/holds/" + wallet.TransferHoldID(failed.TransferID), "", nil, 200, ""}.run(t, s))
	if hold.Status != wallet.StatusVoided || hold.TransferID != failed.TransferID || hold.ExpiresAt != nil {
		t.Fatalf("the failed transfer's hold: %+v", hold)
	}
	step{"POST", "/wallet/" + a + "/holds/" + wallet.TransferHoldID(failed.TransferID) + "/void", "", nil, 409, bus.CodeHoldOwned}.run(t, s)

	// Not decided in time (no process manager runs): 202 with the
	// transfer as it stands; it goes on once a process manager is back.
	s.stop("wallet_writer")
	s.startWith("wallet_writer", map[string]string{"TRANSFER_WORKERS": "0"})
	s.startWith("wallet_server#impatient", map[string]string{"TRANSFER_WAIT": "100ms"})
	impatient := s.baseURL(s.services["wallet_server#impatient"])
	eventually(t, 15*time.Second, "the restarted writer to serve", func() bool {
		resp, err := http.Get(impatient + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Post(impatient+"/transfers", "application/json", strings.NewReader(transferBody(a, b, 5, "")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/transfers/") {
		t.Fatalf("a transfer not waited for: %d, Location %q", resp.StatusCode, loc)
	}
	if p := decode[transfer.View](t, step{"GET", loc, "", nil, 200, ""}.run(t, s)); p.Status != transfer.StatusPending || len(p.Steps) != 1 {
		t.Fatalf("a transfer no process manager took: %+v", p)
	}
	s.stop("wallet_writer")
	s.start("wallet_writer")
	eventually(t, 10*time.Second, "the transfer to complete", func() bool {
		_, _, body := s.do("GET", loc, "", nil)
		return decodeQuiet[transfer.View](body).Status == transfer.StatusCompleted
	})

	for _, c := range []step{
		{"POST", "/transfers", transferBody(a, a, 1, ""), nil, 400, bus.CodeSameWallet},
		{"POST", "/transfers", `{"from": "` + a + `", "amount": 1}`, nil, 400, bus.CodeInvalidWalletID},
		{"POST", "/transfers", transferBody(a, "nope", 1, ""), nil, 400, bus.CodeInvalidWalletID},
		{"POST", "/transfers", transferBody(a, b, 0, ""), nil, 400, bus.CodeInvalidAmount},
		{"POST", "/transfers", `{"from": "` + a + `", "to": "` + b + `", "amount": 2.5}`, nil, 400, bus.CodeInvalidAmount},
		{"POST", "/transfers", transferBody(a, b, 1, `, "memo": "x"`), nil, 400, bus.CodeInvalidBody},
		{"POST", "/transfers", transferBody(a, b, 1, `, "reference": 7`), nil, 400, bus.CodeInvalidReference},
		{"POST", "/transfers", transferBody(a, b, 1, `, "reference": "`+strings.Repeat("r", 256)+`"`), nil, 400, bus.CodeInvalidReference},
		{"POST", "/transfers", "[]", nil, 400, bus.CodeInvalidBody},
		{"GET", "/transfers/" + ksuid.New().String(), "", nil, 404, bus.CodeTransferNotFound},
		{"GET", "/transfers/nope", "", nil, 400, bus.CodeInvalidTransferID},
		{"GET", "/transfers/" + v.TransferID + "?x=1", "", nil, 400, bus.CodeInvalidQuery},
	} {
		c.run(t, s)
	}
	if got := s.balanceOf(t, a); got.Balance != 65 {
		t.Fatalf("bad requests moved money: %+v", got)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") || !strings.Contains(out, "4 transfers: 2 completed, 2 failed, 0 in flight; balances 100 = credits 100 − debits 0 + in flight 0: 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// rush posts n bodies (body(i) the i-th) to path at once, and returns the
// id each answer's Location names after path; every answer must be 200,
// 202 or 409.
func (s *stack) rush(t *testing.T, n int, path string, body func(i int) string) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			status, hdr, b, err := s.request("POST", path, body(i), nil)
			switch {
			case err != nil:
				errs <- err
			case status != http.StatusOK && status != http.StatusAccepted && status != http.StatusConflict:
				errs <- fmt.Errorf("POST %s %d: %d %s", path, i, status, b)
			default:
				ids[i] = strings.TrimPrefix(hdr.Get("Location"), path+"/")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// ends waits, at most within, until every operation at prefix+id (a
// transfer, an order) has a status other than pending, and counts them by
// status.
func (s *stack) ends(t *testing.T, within time.Duration, prefix string, ids []string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	eventually(t, within, "every "+prefix+" to end", func() bool {
		clear(counts)
		for _, id := range ids {
			_, _, body := s.do("GET", prefix+id, "", nil)
			counts[decodeQuiet[struct{ Status string }](body).Status]++
		}
		return counts["pending"] == 0 && counts[""] == 0
	})
	return counts
}

// TestConcurrentTransfers: 1,000 transfers of 1 at once out of a wallet
// holding 400 → exactly 400 complete, 600 fail for funds, and the money
// is all there.
func TestConcurrentTransfers(t *testing.T) {
	s := startStack(t)
	const n, funds = 1000, 400
	from := ksuid.New().String()
	to := make([]string, 10)
	for i := range to {
		to[i] = ksuid.New().String()
	}
	step{"POST", "/wallet/" + from + "/credit", fmt.Sprintf(`{"amount": %d}`, funds), nil, 200, ""}.run(t, s)

	ids := s.rush(t, n, "/transfers", func(i int) string { return transferBody(from, to[i%len(to)], 1, "") })
	counts := s.ends(t, 60*time.Second, "/transfers/", ids)
	if counts["completed"] != funds || counts["failed"] != n-funds {
		t.Fatalf("%v, want %d completed", counts, funds)
	}
	var sum int64
	for _, w := range to {
		sum += s.balanceOf(t, w).Balance
	}
	if got := s.balanceOf(t, from); got.Balance != 0 || got.Held != 0 || sum != funds {
		t.Fatalf("the wallet the money left: %+v; the others hold %d", got, sum)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestTransferReversals: a completed transfer's money goes back by a
// reversal, a transfer of its own the other way, at most once; a reversal
// the wallet cannot fund fails like a debit and may be tried again; only a
// completed transfer can be reversed.
func TestTransferReversals(t *testing.T) {
	s := startStack(t)
	a, b := ksuid.New().String(), ksuid.New().String()
	step{"POST", "/wallet/" + a + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)
	orig := decode[transfer.View](t, step{"POST", "/transfers", transferBody(a, b, 30, ""), nil, 200, ""}.run(t, s))

	key := map[string]string{"Idempotency-Key": "undo-1"}
	status, hdr, body := s.do("POST", "/transfers/"+orig.TransferID+"/reverse", "", key)
	if status != http.StatusOK {
		t.Fatalf("reverse: %d %s", status, body)
	}
	rev := decode[transfer.View](t, body)
	if rev.Status != transfer.StatusCompleted || rev.ReversalOf != orig.TransferID || rev.From != b || rev.To != a || rev.Amount != 30 ||
		hdr.Get("Location") != "/transfers/"+rev.TransferID || rev.TransferID == orig.TransferID {
		t.Fatalf("reversal answered %s (Location %q)", body, hdr.Get("Location"))
	}
	if got := s.balanceOf(t, a); got.Balance != 100 {
		t.Fatalf("after the reversal: %+v", got)
	}
	// Once: the same key replays the reversal; another request is refused.
	status, hdr, body = s.do("POST", "/transfers/"+orig.TransferID+"/reverse", "{}", key)
	if status != http.StatusOK || hdr.Get(httpapi.ReplayedHeader) != "true" || decode[transfer.View](t, body).TransferID != rev.TransferID {
		t.Fatalf("retry of the reversal: %d %v %s", status, hdr, body)
	}
	step{"POST", "/transfers/" + orig.TransferID + "/reverse", "", nil, 409, bus.CodeAlreadyReversed}.run(t, s)
	got := decode[transfer.View](t, step{"GET", "/transfers/" + orig.TransferID, "", nil, 200, ""}.run(t, s))
	if got.Status != transfer.StatusCompleted || got.Reversal == nil || got.Reversal.TransferID != rev.TransferID || got.Reversal.Status != transfer.StatusCompleted {
		t.Fatalf("the reversed transfer: %+v", got)
	}
	if got := s.balanceOf(t, b); got.Balance != 0 {
		t.Fatalf("the wallet the reversal took back from: %+v", got)
	}

	// The money was spent: the reversal fails for funds, and once it is
	// back, a second attempt goes through.
	c := ksuid.New().String()
	second := decode[transfer.View](t, step{"POST", "/transfers", transferBody(a, c, 20, ""), nil, 200, ""}.run(t, s))
	step{"POST", "/wallet/" + c + "/debit", `{"amount": 15}`, nil, 200, ""}.run(t, s)
	body = step{"POST", "/transfers/" + second.TransferID + "/reverse", "", nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	if f := decode[failedTransfer](t, body).Transfer; f.Status != transfer.StatusFailed || f.ReversalOf != second.TransferID {
		t.Fatalf("a reversal the wallet cannot fund: %s", body)
	}
	eventually(t, 5*time.Second, "the failed reversal recorded on the original", func() bool {
		_, _, body := s.do("GET", "/transfers/"+second.TransferID, "", nil)
		v := decodeQuiet[transfer.View](body)
		return v.Reversal != nil && v.Reversal.Status == transfer.StatusFailed && v.Reversal.Code == string(bus.CodeInsufficientFunds)
	})
	step{"POST", "/wallet/" + c + "/credit", `{"amount": 15}`, nil, 200, ""}.run(t, s)
	step{"POST", "/transfers/" + second.TransferID + "/reverse", "", nil, 200, ""}.run(t, s)
	if got := s.balanceOf(t, c); got.Balance != 0 {
		t.Fatalf("after the second attempt: %+v", got)
	}

	failed := decode[failedTransfer](t, step{"POST", "/transfers", transferBody(a, b, 1000, ""), nil, 409, bus.CodeInsufficientFunds}.run(t, s)).Transfer
	for _, c := range []step{
		{"POST", "/transfers/" + failed.TransferID + "/reverse", "", nil, 409, bus.CodeTransferNotCompleted},
		{"POST", "/transfers/" + ksuid.New().String() + "/reverse", "", nil, 404, bus.CodeTransferNotFound},
		{"POST", "/transfers/nope/reverse", "", nil, 400, bus.CodeInvalidTransferID},
		{"POST", "/transfers/" + orig.TransferID + "/reverse", `{"amount": 5}`, nil, 400, bus.CodeInvalidBody},
		{"GET", "/transfers/" + orig.TransferID + "/reverse", "", nil, 405, bus.CodeMethodNotAllowed},
	} {
		c.run(t, s)
	}
	if got := s.balanceOf(t, a); got.Balance != 100 {
		t.Fatalf("a: %+v", got)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, "6 transfers: 4 completed, 2 failed, 0 in flight") || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

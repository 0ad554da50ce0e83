package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/transfer"
	"coffer/pkg/wallet"
)

const transferHelp = `expected a JSON body like {"from": "<wallet id>", "to": "<wallet id>", "amount": 500, "reference": "..."}: amount a whole number of minor units from 1 to 10^15, reference optional`

// createTransfer is POST /transfers: it requests the transfer, then waits
// for its process manager to complete or fail it, at most TransferWait:
// 200 with the completed transfer, the failure's problem (409
// insufficient_funds, wallet_closed, ...) with the transfer in it, or
// 202 with the transfer as it stands and its Location while it is pending.
// Under an Idempotency-Key the transfer id is the key's on the wallet the
// money leaves, so that a retry reaches the same transfer and learns where
// it stands.
func (s *server) createTransfer(w http.ResponseWriter, r *http.Request) {
	key, body, perr := commandRequest(w, r)
	var req transfer.RequestData
	if perr == nil {
		req, perr = transferRequest(body)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	id := transferIDFor(req.From, key)
	data, _ := json.Marshal(req)
	events, stop := s.watch(transfer.Name, id)
	defer stop()
	v, replayed, ok := s.transferCommand(w, r, id, transfer.Request, key, data)
	if !ok {
		return
	}
	w.Header().Set("Location", "/transfers/"+id)
	if v, ok = s.awaitTransfer(r, id, v, replayed, events); ok {
		answerTransfer(w, r, v)
	}
}

// transferCommand sends action with data to transfer id under key and
// returns the transfer it answered with, and whether that was a replay;
// ok is false once it has answered with a problem.
func (s *server) transferCommand(w http.ResponseWriter, r *http.Request, id string, action transfer.Action, key string, data []byte) (v transfer.View, replayed, ok bool) {
	res, replayed, ok := s.ask(w, r, transfer.Name, id, string(action), key, data)
	if !ok {
		return v, replayed, false
	}
	if err := json.Unmarshal(res, &v); err != nil {
		s.readFailed(w, r, fmt.Errorf("answer to %s of transfer %s %q: %w", action, id, res, err))
		return v, replayed, false
	}
	return v, replayed, true
}

// awaitTransfer waits until transfer id, at v, ends or TransferWait
// passes (awaitEnd); ok is false once it has answered with a problem.
func (s *server) awaitTransfer(r *http.Request, id string, v transfer.View, replayed bool, events <-chan struct{}) (transfer.View, bool) {
	b, _ := json.Marshal(v)
	b, ok := s.awaitEnd(r, transfer.Name, id, b, replayed, events)
	if ok && json.Unmarshal(b, &v) != nil {
		return v, true // the newest readable view stands
	}
	return v, ok
}

// progress is what waiting needs of the view of an operation (a transfer,
// an order): where it stands.
type progress struct {
	Status  string `json:"status"`
	Version int64  `json:"version"`
}

// awaitEnd waits until the operation id of domain, whose view is v, is no
// longer pending or TransferWait passes, looking at the read model on each
// of its events (and now and then, in case a signal was lost), and returns
// its newest view; ok is false if the client left.
func (s *server) awaitEnd(r *http.Request, domain, id string, v []byte, replayed bool, events <-chan struct{}) ([]byte, bool) {
	var at progress
	json.Unmarshal(v, &at) //nolint:errcheck // an unreadable view has no status to wait on
	deadline := time.NewTimer(s.limits.TransferWait)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	// A replayed answer is the operation as it was first asked for: look
	// at once where it stands now.
	for look := replayed; at.Status == "pending"; look = false {
		if !look {
			select {
			case <-r.Context().Done():
				return v, false
			case <-deadline.C:
				return v, true
			case <-events:
			case <-poll.C:
			}
		}
		b, err := s.reads.State(r.Context(), domain, id)
		if err != nil || b == nil {
			continue // the answer says pending, and the request may end so
		}
		var now progress
		if json.Unmarshal(b, &now) == nil && now.Version > at.Version {
			v, at = b, now
		}
	}
	return v, true
}

// watch signals each new event of stream id of domain until stop; with no
// signals (NATS would not subscribe) a wait polls the read model alone.
// Watch before asking, so that no step is missed.
func (s *server) watch(domain, id string) (<-chan struct{}, func()) {
	events, stop, err := s.cmds.Watch(domain, id)
	if err != nil {
		s.log.Warn("cannot watch a stream; polling instead", "domain", domain, "id", id, "err", err)
		return nil, func() {}
	}
	return events, stop
}

// answerTransfer answers with v: 200 completed, 202 pending, and a failure
// as the problem it failed with, the transfer in its member "transfer".
func answerTransfer(w http.ResponseWriter, r *http.Request, v transfer.View) {
	body, _ := json.Marshal(v)
	switch v.Status {
	case transfer.StatusCompleted:
		writeRawJSON(w, http.StatusOK, body)
	case transfer.StatusFailed:
		// The problem's own members (status, code) would clash with the
		// transfer's: it goes in a member of its own.
		fields := append(append([]byte(`{"transfer":`), body...), '}')
		writeProblem(w, r, &bus.Error{Code: bus.Code(v.Code), Fields: fields,
			Detail: fmt.Sprintf("transfer %s of %d from %s to %s failed: %s", v.TransferID, v.Amount, v.From, v.To, v.Code)})
	default:
		writeRawJSON(w, http.StatusAccepted, body)
	}
}

// transferRequest reads the body of POST /transfers.
func transferRequest(body []byte) (transfer.RequestData, *bus.Error) {
	var d transfer.RequestData
	fields, perr := objectFields(body, transferHelp)
	if perr != nil {
		return d, perr
	}
	for name, raw := range fields {
		switch name {
		case "from", "to":
			var id string
			if json.Unmarshal(raw, &id) != nil {
				return d, problem(bus.CodeInvalidWalletID, fmt.Sprintf("%s must be a wallet id, a string; %s", name, transferHelp))
			}
			if _, err := ksuid.Parse(id); err != nil {
				return d, problem(bus.CodeInvalidWalletID, fmt.Sprintf("%s %q is not a KSUID (27 base62 characters, e.g. from POST /wallet)", name, truncate(id)))
			}
			if name == "from" {
				d.From = id
			} else {
				d.To = id
			}
		case "amount":
			n, err := parseAmount(raw)
			if err != nil {
				return d, problem(bus.CodeInvalidAmount, err.Error()+"; "+transferHelp)
			}
			d.Amount = n
		case "reference":
			if json.Unmarshal(raw, &d.Reference) != nil || len(d.Reference) > transfer.MaxReferenceLen || !utf8.ValidString(d.Reference) {
				return d, problem(bus.CodeInvalidReference, fmt.Sprintf("reference must be a string of at most %d bytes", transfer.MaxReferenceLen))
			}
		default:
			return d, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), transferHelp))
		}
	}
	switch {
	case d.From == "" || d.To == "":
		return d, problem(bus.CodeInvalidWalletID, "from and to are both required; "+transferHelp)
	case d.From == d.To:
		return d, problem(bus.CodeSameWallet, "from and to are the same wallet; a transfer moves money between two")
	case d.Amount == 0:
		return d, problem(bus.CodeInvalidAmount, "amount is missing; "+transferHelp)
	}
	return d, nil
}

// transferIDFor is the id of the transfer POST /transfers requests: new,
// or under an Idempotency-Key the key's on the wallet the money leaves
// (for a reversal, scope names the transfer it reverses).
func transferIDFor(scope, key string) string { return idFor(key, "coffer transfer id", scope) }

// reverseTransaction is POST /wallet/{id}/transactions/{tx_id}/reverse:
// a credit or a debit taken back by a compensating entry, linked to it
// (type reversal, reverses tx_id), at most once (409 already_reversed).
// Taking back a credit is refused as a debit would be. The writer reads the
// transaction from the wallet's log (404 transaction_not_found; a hold's
// capture or a transfer's leg is 409 transaction_not_reversible).
func (s *server) reverseTransaction(w http.ResponseWriter, r *http.Request) {
	id, key, perr := commandTarget(r)
	tx := mux.Vars(r)["tx_id"]
	if _, err := ksuid.Parse(tx); perr == nil && err != nil {
		perr = problem(bus.CodeInvalidTransactionID, fmt.Sprintf("transaction id %q is not a KSUID (the id of an entry of GET /wallet/{id}/transactions)", truncate(tx)))
	}
	if perr == nil {
		perr = emptyBody(w, r)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	data, _ := json.Marshal(wallet.ReverseData{TxID: tx})
	s.send(w, r, id, wallet.Reverse, key, data, http.StatusOK)
}

// emptyBody reads a body that must be empty, or {}.
func emptyBody(w http.ResponseWriter, r *http.Request) *bus.Error {
	body, perr := readBody(w, r)
	if perr != nil || len(bytes.TrimSpace(body)) == 0 {
		return perr
	}
	fields, perr := objectFields(body, "expected no body, or {}")
	if perr == nil && len(fields) > 0 {
		perr = problem(bus.CodeInvalidBody, r.URL.Path+" takes no body, or {}")
	}
	return perr
}

// transferIDOf returns the {id} of the route if it can name a transfer.
func transferIDOf(r *http.Request) (string, *bus.Error) {
	id := mux.Vars(r)["id"]
	if transfer.CheckID(id) != nil {
		return "", problem(bus.CodeInvalidTransferID, fmt.Sprintf("transfer id %q is not a KSUID (27 base62 characters, from POST /transfers)", truncate(id)))
	}
	return id, nil
}

// reverseTransfer is POST /transfers/{id}/reverse: a completed transfer's
// money goes back by a transfer of its own the other way (its
// reversal_of names the original), at most once: 409 already_reversed
// while one is under way or after one completed (a failed one may be tried
// again), 409 transfer_not_completed before the transfer completed. It
// answers as POST /transfers does, with the reversal: 200 completed, its
// failure's 409 (insufficient_funds when the wallet the money went to no
// longer has it), or 202 pending, with Location the reversal's URL.
func (s *server) reverseTransfer(w http.ResponseWriter, r *http.Request) {
	id, perr := transferIDOf(r)
	if perr == nil {
		_, perr = queryParams(r)
	}
	var key string
	if perr == nil {
		key, perr = idempotencyKey(r)
	}
	if perr == nil {
		perr = emptyBody(w, r)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	rid := transferIDFor("reversal of "+id, key)
	events, stop := s.watch(transfer.Name, rid)
	defer stop()
	data, _ := json.Marshal(transfer.ReverseData{ReversalID: rid})
	orig, _, ok := s.transferCommand(w, r, id, transfer.Reverse, key, data)
	if !ok {
		return
	}
	// orig names rid as its reversal: the reversal id is in the command's
	// fingerprint, so a replay under the key was asked for the same one.
	w.Header().Set("Location", "/transfers/"+rid)
	// Until the process manager has requested it, the reversal is what it
	// will be: pending, with no step yet.
	v := transfer.View{TransferID: rid, From: orig.To, To: orig.From, Amount: orig.Amount, Reference: "reversal of " + id,
		ReversalOf: id, Status: transfer.StatusPending, Steps: []transfer.StepView{}}
	if v, ok := s.awaitTransfer(r, rid, v, true, events); ok {
		answerTransfer(w, r, v)
	}
}

// getTransfer is GET /transfers/{id}: the transfer, from Redis.
func (s *server) getTransfer(w http.ResponseWriter, r *http.Request) {
	id, perr := transferIDOf(r)
	s.getState(w, r, transfer.Name, id, perr, problem(bus.CodeTransferNotFound, fmt.Sprintf("no transfer %s", id)))
}

// getState answers with the stored state of stream id of domain (a
// transfer, an order, an item), which takes no query parameter: perr if
// the id is bad, notFound if Redis holds no such stream.
func (s *server) getState(w http.ResponseWriter, r *http.Request, domain, id string, perr, notFound *bus.Error) {
	if perr == nil {
		_, perr = queryParams(r)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	b, err := s.reads.State(r.Context(), domain, id)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	if b == nil {
		writeProblem(w, r, notFound)
		return
	}
	writeRawJSON(w, http.StatusOK, b)
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"coffer/pkg/bus"
	"coffer/pkg/order"
	"coffer/pkg/wallet"
)

// Limits are the bounds the API puts on what clients ask for.
type Limits struct {
	// HoldExpiresIn is how long a hold lasts when its request does not say.
	HoldExpiresIn time.Duration
	// HoldMaxExpiresIn is the longest a hold may last.
	HoldMaxExpiresIn time.Duration
	// TransferWait is how long POST /transfers and POST /orders wait for
	// the transfer or the order to end before they answer 202.
	TransferWait time.Duration
	// ShopWalletID is the wallet orders pay into.
	ShopWalletID string
	// MaxStreams bounds the event streams (Server-Sent Events) one server
	// serves at once; StreamHeartbeat is how often an idle one gets a
	// comment line.
	MaxStreams      int
	StreamHeartbeat time.Duration
}

// MaxTransferWait bounds TransferWait: a request is not held longer.
const MaxTransferWait = time.Minute

// DefaultLimits are the limits of a server given none: holds last 10
// minutes unless asked otherwise, at most 7 days; a transfer is waited for
// 5 seconds.
var DefaultLimits = Limits{HoldExpiresIn: 10 * time.Minute, HoldMaxExpiresIn: 7 * 24 * time.Hour, TransferWait: 5 * time.Second,
	ShopWalletID: order.DefaultShopWalletID, MaxStreams: 1000, StreamHeartbeat: 15 * time.Second}

// Check says what is wrong with l, nil if nothing.
func (l Limits) Check() error {
	switch {
	case l.HoldMaxExpiresIn < time.Second || l.HoldMaxExpiresIn > wallet.MaxHoldExpiry || l.HoldMaxExpiresIn%time.Second != 0:
		return fmt.Errorf("the longest hold must be whole seconds from 1s to %s, not %s", wallet.MaxHoldExpiry, l.HoldMaxExpiresIn)
	case l.HoldExpiresIn < time.Second || l.HoldExpiresIn > l.HoldMaxExpiresIn || l.HoldExpiresIn%time.Second != 0:
		return fmt.Errorf("a hold's default expiry must be whole seconds from 1s to the longest, %s, not %s", l.HoldMaxExpiresIn, l.HoldExpiresIn)
	case l.TransferWait < 0 || l.TransferWait > MaxTransferWait:
		return fmt.Errorf("the wait for a transfer must be from 0 to %s, not %s", MaxTransferWait, l.TransferWait)
	case ksuidInvalid(l.ShopWalletID):
		return fmt.Errorf("the shop's wallet id %q is not a KSUID", l.ShopWalletID)
	case l.MaxStreams < 1:
		return fmt.Errorf("the event streams a server serves must be at least 1, not %d", l.MaxStreams)
	case l.StreamHeartbeat < 100*time.Millisecond || l.StreamHeartbeat > 5*time.Minute:
		return fmt.Errorf("the heartbeat of an event stream must be from 100ms to 5m, not %s", l.StreamHeartbeat)
	}
	return nil
}

const holdHelp = `expected a JSON body like {"amount": 500, "expires_in": 600}: amount a whole number of minor units from 1 to 10^15, expires_in (optional) whole seconds`

const captureHelp = `expected no body, or {"amount": N}: the part of the hold to capture, a whole number of minor units from 1 to 10^15`

// placeHold is POST /wallet/{id}/holds: {"amount": N, "expires_in": S}.
// The hold's id is new, or under an Idempotency-Key derived from the key
// and the wallet, so that a retry reaches the same hold.
func (s *server) placeHold(w http.ResponseWriter, r *http.Request) {
	id, key, perr := commandTarget(r)
	var body []byte
	if perr == nil {
		body, perr = readBody(w, r)
	}
	holdID := holdIDFor(id, key)
	var data []byte
	if perr == nil {
		data, perr = s.holdData(body, holdID)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.hold(w, r, id, holdID, key, data)
}

// hold sends the hold holdID with data (from holdData) and answers 201
// with its Location.
func (s *server) hold(w http.ResponseWriter, r *http.Request, id, holdID, key string, data []byte) {
	w.Header().Set("Location", "/wallet/"+id+"/holds/"+holdID)
	s.send(w, r, id, wallet.PlaceHold, key, data, http.StatusCreated)
}

// holdData is the data of a hold from the body of POST /wallet/{id}/holds,
// under holdID; POST /api comes here too.
func (s *server) holdData(body []byte, holdID string) ([]byte, *bus.Error) {
	fields, perr := objectFields(body, holdHelp)
	if perr != nil {
		return nil, perr
	}
	d := wallet.HoldData{HoldID: holdID, ExpiresIn: int64(s.limits.HoldExpiresIn / time.Second)}
	for name, raw := range fields {
		switch name {
		case "amount":
			n, err := parseWhole(raw, "amount", false)
			if err != nil || n > wallet.MaxAmount {
				return nil, problem(bus.CodeInvalidAmount, fmt.Sprintf("amount %s: %s", truncate(string(raw)), holdHelp))
			}
			d.Amount = n
		case "expires_in":
			n, err := parseWhole(raw, "expires_in", false)
			if most := int64(s.limits.HoldMaxExpiresIn / time.Second); err != nil || n > most {
				return nil, problem(bus.CodeInvalidExpiry, fmt.Sprintf("expires_in %s: want whole seconds from 1 to %d", truncate(string(raw)), most))
			}
			d.ExpiresIn = n
		default:
			return nil, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), holdHelp))
		}
	}
	if d.Amount == 0 {
		return nil, problem(bus.CodeInvalidAmount, "amount is missing; "+holdHelp)
	}
	data, _ := json.Marshal(d)
	return data, nil
}

// holdIDFor is the id of the hold POST /wallet/{id}/holds places: new, or
// under an Idempotency-Key the key's on this wallet.
func holdIDFor(walletID, key string) string { return idFor(key, "coffer hold id", walletID) }

// endHold is POST /wallet/{id}/holds/{hold_id}/capture (optional
// {"amount": M}) and /void (no body). The writer decides alone, from the
// holds it keeps active: one that has ended, or that the wallet never had,
// is 409 hold_not_active. (Asking Redis first would answer 404 for a hold
// just placed whenever Redis lags the log.)
func (s *server) endHold(a wallet.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, key, perr := commandTarget(r)
		var holdID string
		if perr == nil {
			holdID, perr = holdIDOf(r)
		}
		var body []byte
		if perr == nil {
			body, perr = readBody(w, r)
		}
		var data []byte
		if perr == nil {
			data, perr = endHoldData(a, body, holdID, r.URL.Path)
		}
		if perr != nil {
			writeProblem(w, r, perr)
			return
		}
		s.send(w, r, id, a, key, data, http.StatusOK)
	}
}

// endHoldData is the data of a capture or a void of holdID from its body:
// nothing or {"amount": M} for a capture, nothing or {} for a void.
func endHoldData(a wallet.Action, body []byte, holdID, path string) ([]byte, *bus.Error) {
	d := wallet.HoldData{HoldID: holdID}
	if len(bytes.TrimSpace(body)) > 0 {
		help := captureHelp
		if a == wallet.VoidHold {
			help = "expected no body, or {}"
		}
		fields, perr := objectFields(body, help)
		if perr != nil {
			return nil, perr
		}
		for name, raw := range fields {
			if name != "amount" || a != wallet.CaptureHold {
				return nil, problem(bus.CodeInvalidBody, fmt.Sprintf("%s: the request body has an unknown field %q; %s", path, truncate(name), help))
			}
			n, err := parseWhole(raw, "amount", false)
			if err != nil || n > wallet.MaxAmount {
				return nil, problem(bus.CodeInvalidAmount, fmt.Sprintf("amount %s: %s", truncate(string(raw)), captureHelp))
			}
			d.Amount = n
		}
	}
	data, _ := json.Marshal(d)
	return data, nil
}

// holdIDOf returns the {hold_id} of the route if it can name a hold.
func holdIDOf(r *http.Request) (string, *bus.Error) { return checkHoldID(mux.Vars(r)["hold_id"]) }

// checkHoldID returns id if it can name a hold (the wallet domain's rule).
func checkHoldID(id string) (string, *bus.Error) {
	if wallet.CheckHoldID(id) != nil {
		return "", problem(bus.CodeInvalidHoldID, fmt.Sprintf("hold id %q: want 1 to %d letters, digits, '_', '-' or ':'", truncate(id), wallet.MaxHoldIDLen))
	}
	return id, nil
}

// readHold reads a hold of a wallet from Redis; ok is false once it has
// answered with a problem (404 for a hold Redis does not hold).
func (s *server) readHold(w http.ResponseWriter, r *http.Request, walletID, holdID string) ([]byte, bool) {
	b, err := s.reads.Field(r.Context(), wallet.Name, walletID, wallet.HashHolds, holdID)
	if err != nil {
		s.readFailed(w, r, err)
		return nil, false
	}
	if b == nil {
		writeProblem(w, r, problem(bus.CodeHoldNotFound, fmt.Sprintf("wallet %s has no hold %s", walletID, holdID)))
		return nil, false
	}
	return b, true
}

// getHold is GET /wallet/{id}/holds/{hold_id}: the hold, from Redis.
func (s *server) getHold(w http.ResponseWriter, r *http.Request) {
	id, perr := walletID(r)
	var holdID string
	if perr == nil {
		holdID, perr = holdIDOf(r)
	}
	if perr == nil {
		_, perr = queryParams(r)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	if b, ok := s.readHold(w, r, id, holdID); ok {
		writeRawJSON(w, http.StatusOK, b)
	}
}

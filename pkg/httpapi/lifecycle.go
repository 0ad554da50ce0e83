package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/wallet"
)

const profileHelp = `expected no body, or a JSON object with any of "owner" (a string), "metadata" (an object of strings) and "overdraft_limit" (a whole number of minor units from 0 to 10^15)`

// readBody reads the request body, at most MaxBodyBytes of it.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *bus.Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, problem(bus.CodeBodyTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
		}
		return nil, problem(bus.CodeInvalidBody, "the request body could not be read")
	}
	return body, nil
}

// readCommandData reads the body of a's route and returns the data the
// command carries to the writer.
func readCommandData(w http.ResponseWriter, r *http.Request, a wallet.Action) ([]byte, *bus.Error) {
	body, perr := readBody(w, r)
	if perr != nil {
		return nil, perr
	}
	return commandData(a, body, r.URL.Path)
}

// commandData is the data of a wallet command from the body of its REST
// route (at path): {"amount": N} for credit and debit, a profile for open
// (optional) and update, nothing (or {}) for freeze, unfreeze and close.
// POST /api rebuilds that body from its data and comes here too.
func commandData(a wallet.Action, body []byte, path string) ([]byte, *bus.Error) {
	switch a {
	case wallet.Credit, wallet.Debit:
		amount, perr := amountOf(body)
		if perr != nil {
			return nil, perr
		}
		return wallet.EncodeCommandData(amount), nil
	case wallet.Open, wallet.Update:
		return profileData(body, a == wallet.Update)
	}
	if t := bytes.TrimSpace(body); len(t) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(t, &m); err != nil || len(m) > 0 {
			return nil, problem(bus.CodeInvalidBody, path+" takes no body (or {})")
		}
	}
	return nil, nil
}

// profileData reads the body of POST /wallet (update false: optional,
// metadata values strings) or PATCH /wallet/{id} (update true: required,
// metadata values strings or null), and returns it as the data of the
// command: a wallet.ProfileData. The bounds of each field are the wallet
// domain's, checked where the command is decided.
func profileData(body []byte, update bool) ([]byte, *bus.Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		if update {
			return nil, problem(bus.CodeInvalidBody, "the request body is empty; "+profileHelp)
		}
		return nil, nil
	}
	fields, perr := objectFields(body, profileHelp)
	if perr != nil {
		return nil, perr
	}
	var d wallet.ProfileData
	for name, raw := range fields {
		switch name {
		case "owner":
			var owner string
			if err := json.Unmarshal(raw, &owner); err != nil {
				return nil, problem(bus.CodeInvalidOwner, "owner must be a JSON string, not "+truncate(string(raw)))
			}
			d.Owner = &owner
		case "metadata":
			var md map[string]*string
			if err := json.Unmarshal(raw, &md); err != nil || md == nil {
				return nil, problem(bus.CodeInvalidMetadata, "metadata must be a JSON object whose values are strings, not "+truncate(string(raw)))
			}
			for k, v := range md {
				if v == nil && !update {
					return nil, problem(bus.CodeInvalidMetadata, fmt.Sprintf("metadata %q is null: a new wallet's metadata values are strings", k))
				}
			}
			d.Metadata = md
		case "overdraft_limit":
			n, err := parseWhole(raw, "overdraft_limit", true)
			if err != nil {
				return nil, problem(bus.CodeInvalidOverdraftLimit, err.Error()+"; want a whole number of minor units from 0 to 10^15")
			}
			d.OverdraftLimit = &n
		default:
			return nil, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), profileHelp))
		}
	}
	if update && d.Owner == nil && d.Metadata == nil && d.OverdraftLimit == nil {
		return nil, problem(bus.CodeInvalidBody, "the request body changes nothing; "+profileHelp)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, problem(bus.CodeInvalidBody, err.Error())
	}
	return data, nil
}

// objectFields returns the members of a body that must be one JSON object
// with each member once, matched by exact name (encoding/json would take
// "OWNER" for "owner" and let a repeated member win silently).
func objectFields(body []byte, help string) (map[string]json.RawMessage, *bus.Error) {
	invalid := func(what string) *bus.Error { return problem(bus.CodeInvalidBody, "the request body "+what+"; "+help) }
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			return nil, invalid("must be a JSON object")
		}
		return nil, invalid("is not valid JSON")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("is not valid JSON")
		}
		name, _ := tok.(string)
		if _, dup := out[name]; dup {
			return nil, invalid(fmt.Sprintf("has %q twice", truncate(name)))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("is not valid JSON")
		}
		out[name] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, invalid("is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("has data after the JSON object")
	}
	return out, nil
}

// idFor is the id of what a request creates (a wallet, a hold, a
// transfer): a new KSUID, or under an Idempotency-Key one derived from the
// key and scope — what the kind of id is, and what the key is scoped to —
// the same each time, so that a retry reaches the same thing and is
// answered with it, not a second one.
func idFor(key string, scope ...string) string {
	if key == "" {
		return ksuid.New().String()
	}
	sum := sha256.Sum256([]byte(strings.Join(append(scope, key), "\x00")))
	id, _ := ksuid.FromBytes(sum[:20]) // any 20 bytes are a KSUID
	return id.String()
}

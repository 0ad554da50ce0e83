package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/item"
	"coffer/pkg/wallet"
)

// apiCommand is one command of POST /api: the wallet action it runs, the
// member of its data that names the wallet ("" for those that open one),
// and the members whose names differ from the REST route's. A command of
// another domain runs instead with the id its data names under idField
// (unchecked: run checks it as its route does) and the rest of its data as
// the REST route's body.
type apiCommand struct {
	action  wallet.Action
	idField string
	renamed map[string]string // data member -> REST body member
	run     func(s *server, w http.ResponseWriter, r *http.Request, id, key string, body []byte)
}

// apiCommands are the commands POST /api runs: event_bank's names, and
// each REST action under its own.
var apiCommands = map[string]apiCommand{
	"account_open":     {action: wallet.Open, renamed: map[string]string{"account_owner_email": "owner"}},
	"account_deposit":  {action: wallet.Credit, idField: "account_id"},
	"account_withdraw": {action: wallet.Debit, idField: "account_id"},
	"wallet_open":      {action: wallet.Open},
	"wallet_credit":    {action: wallet.Credit, idField: "wallet_id"},
	"wallet_debit":     {action: wallet.Debit, idField: "wallet_id"},
	"wallet_update":    {action: wallet.Update, idField: "wallet_id"},
	"wallet_freeze":    {action: wallet.Freeze, idField: "wallet_id"},
	"wallet_unfreeze":  {action: wallet.Unfreeze, idField: "wallet_id"},
	"wallet_close":     {action: wallet.Close, idField: "wallet_id"},
	"wallet_hold":      {action: wallet.PlaceHold, idField: "wallet_id"},
	"wallet_capture":   {action: wallet.CaptureHold, idField: "wallet_id"},
	"wallet_void":      {action: wallet.VoidHold, idField: "wallet_id"},
	"item_add": {run: func(s *server, w http.ResponseWriter, r *http.Request, _, key string, body []byte) {
		s.addItemFrom(w, r, key, body)
	}},
	"item_restock": {idField: "item_id", run: func(s *server, w http.ResponseWriter, r *http.Request, id, key string, body []byte) {
		if _, perr := checkItemID(id); perr != nil {
			writeProblem(w, r, perr)
			return
		}
		s.itemCommandFrom(w, r, item.Restock, id, key, body)
	}},
	"order_place": {run: func(s *server, w http.ResponseWriter, r *http.Request, _, key string, body []byte) {
		s.placeOrderFrom(w, r, key, body)
	}},
}

const apiHelp = `expected a JSON body {"command": "...", "data": {...}}`

// api is POST /api: {"command": name, "data": {...}} runs the command by
// name and answers exactly what its REST route answers, Idempotency-Key
// included.
func (s *server) api(w http.ResponseWriter, r *http.Request) {
	if _, perr := queryParams(r); perr != nil {
		writeProblem(w, r, perr)
		return
	}
	key, perr := idempotencyKey(r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	body, perr := readBody(w, r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	name, cmd, data, perr := apiRequest(body)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	if cmd.run != nil {
		id := ""
		if raw, ok := data[cmd.idField]; ok && cmd.idField != "" {
			delete(data, cmd.idField)
			if json.Unmarshal(raw, &id) != nil {
				id = string(raw) // not a string: run refuses it as an id
			}
		}
		rest, _ := json.Marshal(data)
		cmd.run(s, w, r, id, key, rest)
		return
	}
	id := ""
	if cmd.idField != "" {
		raw, ok := data[cmd.idField]
		delete(data, cmd.idField)
		if err := json.Unmarshal(raw, &id); !ok || err != nil {
			writeProblem(w, r, problem(bus.CodeInvalidWalletID, fmt.Sprintf("%s takes the wallet's id in data.%s", name, cmd.idField)))
			return
		}
		if _, err := ksuid.Parse(id); err != nil {
			writeProblem(w, r, problem(bus.CodeInvalidWalletID, fmt.Sprintf("data.%s %q is not a KSUID (27 base62 characters, e.g. from POST /wallet)", cmd.idField, id)))
			return
		}
	}
	for from, to := range cmd.renamed {
		if raw, ok := data[from]; ok {
			if _, taken := data[to]; taken {
				writeProblem(w, r, problem(bus.CodeInvalidBody, fmt.Sprintf("data has both %q and %q", from, to)))
				return
			}
			delete(data, from)
			data[to] = raw
		}
	}
	holdID := ""
	if cmd.action == wallet.CaptureHold || cmd.action == wallet.VoidHold {
		raw, ok := data["hold_id"]
		delete(data, "hold_id")
		if err := json.Unmarshal(raw, &holdID); !ok || err != nil {
			writeProblem(w, r, problem(bus.CodeInvalidHoldID, name+" takes the hold's id in data.hold_id"))
			return
		}
	}
	switch cmd.action {
	case wallet.Freeze, wallet.Unfreeze, wallet.Close, wallet.VoidHold:
		if len(data) > 0 {
			writeProblem(w, r, problem(bus.CodeInvalidBody, fmt.Sprintf("%s takes only data.%s, not %q", name, cmd.idField, slices.Sorted(maps.Keys(data))[0])))
			return
		}
	}
	var rest []byte // the REST route's body
	if len(data) > 0 || cmd.action != wallet.Open {
		rest, _ = json.Marshal(data)
	}
	var payload []byte
	switch cmd.action {
	case wallet.PlaceHold:
		holdID = holdIDFor(id, key)
		payload, perr = s.holdData(rest, holdID)
	case wallet.CaptureHold, wallet.VoidHold:
		if holdID, perr = checkHoldID(holdID); perr == nil {
			payload, perr = endHoldData(cmd.action, rest, holdID, r.URL.Path)
		}
	default:
		payload, perr = commandData(cmd.action, rest, r.URL.Path)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	switch cmd.action {
	case wallet.Open:
		s.open(w, r, key, payload)
	case wallet.PlaceHold:
		s.hold(w, r, id, holdID, key, payload)
	default:
		s.send(w, r, id, cmd.action, key, payload, http.StatusOK)
	}
}

// apiRequest reads {"command": name, "data": {...}}.
func apiRequest(body []byte) (string, apiCommand, map[string]json.RawMessage, *bus.Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", apiCommand{}, nil, problem(bus.CodeInvalidBody, "the request body is empty; "+apiHelp)
	}
	fields, perr := objectFields(body, apiHelp)
	if perr != nil {
		return "", apiCommand{}, nil, perr
	}
	var name string
	for f := range fields {
		if f != "command" && f != "data" {
			return "", apiCommand{}, nil, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(f), apiHelp))
		}
	}
	if err := json.Unmarshal(fields["command"], &name); err != nil || name == "" {
		return "", apiCommand{}, nil, problem(bus.CodeInvalidBody, "the request body has no command name; "+apiHelp)
	}
	cmd, ok := apiCommands[name]
	if !ok {
		return "", apiCommand{}, nil, problem(bus.CodeUnknownCommand, fmt.Sprintf("unknown command %q; the commands are %s",
			truncate(name), strings.Join(slices.Sorted(maps.Keys(apiCommands)), ", ")))
	}
	data := map[string]json.RawMessage{}
	if raw, ok := fields["data"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var perr *bus.Error
		if data, perr = objectFields(raw, apiHelp); perr != nil {
			return "", apiCommand{}, nil, problem(bus.CodeInvalidBody, "data must be a JSON object with each member once; "+apiHelp)
		}
	}
	return name, cmd, data, nil
}

package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/item"
	"coffer/pkg/order"
)

const orderHelp = `expected a JSON body like {"wallet_id": "<wallet id>", "lines": [{"item_id": "<item id>", "quantity": 2}]}: 1 to 100 lines, each item once, quantities whole numbers from 1 to 10^9`

// placeOrder is POST /orders: it places the order, then waits for its
// process manager to complete or fail it, at most TransferWait: 200 with
// the completed order, the failure's problem (409 out_of_stock naming the
// item, 409 insufficient_funds, ...) with the order in it, or 202 with the
// order as it stands and its Location while it is pending. Under an
// Idempotency-Key the order id is the key's on the buyer's wallet, so that
// a retry reaches the same order and learns where it stands.
func (s *server) placeOrder(w http.ResponseWriter, r *http.Request) {
	key, body, perr := commandRequest(w, r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.placeOrderFrom(w, r, key, body)
}

// placeOrderFrom places the order body describes (POST /orders, and /api's
// order_place).
func (s *server) placeOrderFrom(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	req, perr := orderRequest(body)
	if perr == nil && req.WalletID == s.limits.ShopWalletID {
		perr = problem(bus.CodeSameWallet, "the shop's wallet cannot place orders: it is where their money goes")
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	req.ShopWalletID = s.limits.ShopWalletID
	id := idFor(key, "coffer order id", req.WalletID)
	data, _ := json.Marshal(req)
	events, stop := s.watch(order.Name, id)
	defer stop()
	placed, replayed, ok := s.ask(w, r, order.Name, id, string(order.Place), key, data)
	if !ok {
		return
	}
	w.Header().Set("Location", "/orders/"+id)
	v, ok := s.awaitEnd(r, order.Name, id, placed, replayed, events)
	if ok {
		answerOrder(w, r, v)
	}
}

// answerOrder answers with the order's view: 200 completed, 202 pending,
// and a failure as the problem it failed with, the order in its member
// "order" (and the item it names, if one, in "item_id").
func answerOrder(w http.ResponseWriter, r *http.Request, b []byte) {
	var v order.View
	if err := json.Unmarshal(b, &v); err != nil {
		writeRawJSON(w, http.StatusAccepted, b)
		return
	}
	switch v.Status {
	case order.StatusCompleted:
		writeRawJSON(w, http.StatusOK, b)
	case order.StatusFailed:
		fields := append(append([]byte(`{"order":`), b...), '}')
		detail := fmt.Sprintf("order %s of %d lines failed: %s", v.OrderID, len(v.Lines), v.Code)
		if v.ItemID != "" {
			fields, _ = json.Marshal(struct {
				Order  json.RawMessage `json:"order"`
				ItemID string          `json:"item_id"`
			}{b, v.ItemID})
			detail = fmt.Sprintf("order %s failed: %s on item %s", v.OrderID, v.Code, v.ItemID)
		}
		writeProblem(w, r, &bus.Error{Code: bus.Code(v.Code), Fields: fields, Detail: detail})
	default:
		writeRawJSON(w, http.StatusAccepted, b)
	}
}

// orderRequest reads the body of POST /orders.
func orderRequest(body []byte) (order.PlaceData, *bus.Error) {
	var d order.PlaceData
	fields, perr := objectFields(body, orderHelp)
	if perr != nil {
		return d, perr
	}
	for name, raw := range fields {
		switch name {
		case "wallet_id":
			if json.Unmarshal(raw, &d.WalletID) != nil || ksuidInvalid(d.WalletID) {
				return d, problem(bus.CodeInvalidWalletID, fmt.Sprintf("wallet_id %s is not a wallet id (a KSUID, e.g. from POST /wallet)", truncate(string(raw))))
			}
		case "lines":
			var lines []json.RawMessage
			if json.Unmarshal(raw, &lines) != nil || len(lines) == 0 || len(lines) > order.MaxLines {
				return d, problem(bus.CodeInvalidLines, "lines must be an array of 1 to 100 lines; "+orderHelp)
			}
			for i, l := range lines {
				line, perr := orderLine(l, i)
				if perr != nil {
					return d, perr
				}
				d.Lines = append(d.Lines, line)
			}
		default:
			return d, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), orderHelp))
		}
	}
	switch {
	case d.WalletID == "":
		return d, problem(bus.CodeInvalidWalletID, "wallet_id is missing; "+orderHelp)
	case d.Lines == nil:
		return d, problem(bus.CodeInvalidLines, "lines is missing; "+orderHelp)
	}
	seen := map[string]bool{}
	for i, l := range d.Lines {
		if seen[l.ItemID] {
			return d, problem(bus.CodeInvalidLines, fmt.Sprintf("line %d names item %s again: give each item once, with its whole quantity", i+1, l.ItemID))
		}
		seen[l.ItemID] = true
	}
	return d, nil
}

// orderLine reads line i of an order, {"item_id", "quantity"}.
func orderLine(raw json.RawMessage, i int) (order.LineData, *bus.Error) {
	var l order.LineData
	help := fmt.Sprintf("line %d must be {\"item_id\": \"<item id>\", \"quantity\": N}", i+1)
	fields, perr := objectFields(raw, help)
	if perr != nil {
		return l, problem(bus.CodeInvalidLines, help)
	}
	for name, v := range fields {
		switch name {
		case "item_id":
			var id string
			if json.Unmarshal(v, &id) != nil {
				return l, problem(bus.CodeInvalidItemID, help)
			}
			if _, perr := checkItemID(id); perr != nil {
				return l, perr
			}
			l.ItemID = id
		case "quantity":
			n, err := parseWhole(v, "quantity", false)
			if err == nil && n > item.MaxQuantity {
				err = fmt.Errorf("quantity %d is over 10^9", n)
			}
			if err != nil {
				return l, problem(bus.CodeInvalidQuantity, fmt.Sprintf("line %d: %v", i+1, err))
			}
			l.Quantity = n
		default:
			return l, problem(bus.CodeInvalidLines, fmt.Sprintf("line %d has an unknown field %q; %s", i+1, truncate(name), help))
		}
	}
	if l.ItemID == "" || l.Quantity == 0 {
		return l, problem(bus.CodeInvalidLines, help)
	}
	return l, nil
}

func ksuidInvalid(id string) bool {
	_, err := ksuid.Parse(id)
	return err != nil
}

// getOrder is GET /orders/{id}: the order, from Redis.
func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, perr := orderIDOf(r)
	s.getState(w, r, order.Name, id, perr, problem(bus.CodeOrderNotFound, fmt.Sprintf("no order %s", id)))
}

// orderIDOf returns the {id} of the route if it can name an order.
func orderIDOf(r *http.Request) (string, *bus.Error) {
	id := mux.Vars(r)["id"]
	if order.CheckID(id) != nil {
		return "", problem(bus.CodeInvalidOrderID, fmt.Sprintf("order id %q is not a KSUID (27 base62 characters, from POST /orders)", truncate(id)))
	}
	return id, nil
}

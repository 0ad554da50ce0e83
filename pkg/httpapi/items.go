package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"coffer/pkg/bus"
	"coffer/pkg/item"
)

const (
	itemHelp    = `expected a JSON body like {"name": "Blue mug", "price": 1250, "stock": 40}: name 1 to 255 bytes, price a whole number of minor units from 1 to 10^12, stock a whole number from 0 to 10^12 (0 if left out)`
	updateHelp  = `expected a JSON body with "name" (1 to 255 bytes), "price" (a whole number of minor units from 1 to 10^12) or both`
	restockHelp = `expected a JSON body like {"quantity": 10}: a whole number from 1 to 10^9`
)

// addItem is POST /items: a new item, 201 with it and its Location. Under
// an Idempotency-Key the item's id is the key's, so that a retry reaches
// the same item.
func (s *server) addItem(w http.ResponseWriter, r *http.Request) {
	key, body, perr := commandRequest(w, r)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.addItemFrom(w, r, key, body)
}

// addItemFrom adds the item body describes (POST /items, and /api's
// item_add).
func (s *server) addItemFrom(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	d, perr := itemAddData(body)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	id := idFor(key, "coffer item id")
	data, _ := json.Marshal(d)
	w.Header().Set("Location", "/items/"+id)
	s.sendTo(w, r, item.Name, id, string(item.Add), key, data, http.StatusCreated)
}

// itemAddData reads the body of POST /items.
func itemAddData(body []byte) (item.AddData, *bus.Error) {
	var d item.AddData
	fields, perr := objectFields(body, itemHelp)
	if perr != nil {
		return d, perr
	}
	for name, raw := range fields {
		var perr *bus.Error
		switch name {
		case "name":
			d.Name, perr = itemName(raw, itemHelp)
		case "price":
			d.Price, perr = itemPrice(raw, itemHelp)
		case "stock":
			n, err := parseWhole(raw, "stock", true)
			if err == nil && n > item.MaxStock {
				err = fmt.Errorf("stock %d is over 10^12", n)
			}
			if err != nil {
				perr = problem(bus.CodeInvalidQuantity, err.Error()+"; "+itemHelp)
			}
			d.Stock = n
		default:
			perr = problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), itemHelp))
		}
		if perr != nil {
			return d, perr
		}
	}
	switch {
	case d.Name == "":
		return d, problem(bus.CodeInvalidName, "name is missing; "+itemHelp)
	case d.Price == 0:
		return d, problem(bus.CodeInvalidPrice, "price is missing; "+itemHelp)
	}
	return d, nil
}

func itemName(raw json.RawMessage, help string) (string, *bus.Error) {
	var name string
	if json.Unmarshal(raw, &name) != nil || item.CheckName(name) != nil {
		return "", problem(bus.CodeInvalidName, fmt.Sprintf("name must be a string of 1 to %d bytes of UTF-8, not %s; %s", item.MaxNameLen, truncate(string(raw)), help))
	}
	return name, nil
}

func itemPrice(raw json.RawMessage, help string) (int64, *bus.Error) {
	n, err := parseWhole(raw, "price", false)
	if err == nil && n > item.MaxPrice {
		err = fmt.Errorf("price %d is over 10^12", n)
	}
	if err != nil {
		return 0, problem(bus.CodeInvalidPrice, err.Error()+"; "+help)
	}
	return n, nil
}

// itemIDOf returns the {id} of the route if it can name an item.
func itemIDOf(r *http.Request) (string, *bus.Error) { return checkItemID(mux.Vars(r)["id"]) }

func checkItemID(id string) (string, *bus.Error) {
	if item.CheckID(id) != nil {
		return "", problem(bus.CodeInvalidItemID, fmt.Sprintf("item id %q is not a KSUID (27 base62 characters, from POST /items)", truncate(id)))
	}
	return id, nil
}

// itemCommand is the handler of PATCH /items/{id} ({"name", "price"}, each
// optional) and POST /items/{id}/restock ({"quantity": N}).
func (s *server) itemCommand(a item.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, perr := itemIDOf(r)
		var key string
		var body []byte
		if perr == nil {
			key, body, perr = commandRequest(w, r)
		}
		if perr != nil {
			writeProblem(w, r, perr)
			return
		}
		s.itemCommandFrom(w, r, a, id, key, body)
	}
}

// itemCommandFrom sends an update or a restock read from body (the REST
// routes, and /api's item_restock).
func (s *server) itemCommandFrom(w http.ResponseWriter, r *http.Request, a item.Action, id, key string, body []byte) {
	var data []byte
	var perr *bus.Error
	if a == item.Restock {
		data, perr = restockData(body)
	} else {
		data, perr = itemUpdateData(body)
	}
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	s.sendTo(w, r, item.Name, id, string(a), key, data, http.StatusOK)
}

func itemUpdateData(body []byte) ([]byte, *bus.Error) {
	fields, perr := objectFields(body, updateHelp)
	if perr != nil {
		return nil, perr
	}
	var d item.UpdateData
	for name, raw := range fields {
		switch name {
		case "name":
			d.Name, perr = itemName(raw, updateHelp)
		case "price":
			d.Price, perr = itemPrice(raw, updateHelp)
		default:
			perr = problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), updateHelp))
		}
		if perr != nil {
			return nil, perr
		}
	}
	if d.Name == "" && d.Price == 0 {
		return nil, problem(bus.CodeInvalidBody, "the request body changes nothing; "+updateHelp)
	}
	data, _ := json.Marshal(d)
	return data, nil
}

func restockData(body []byte) ([]byte, *bus.Error) {
	fields, perr := objectFields(body, restockHelp)
	if perr != nil {
		return nil, perr
	}
	var d item.RestockData
	for name, raw := range fields {
		if name != "quantity" {
			return nil, problem(bus.CodeInvalidBody, fmt.Sprintf("the request body has an unknown field %q; %s", truncate(name), restockHelp))
		}
		n, err := parseWhole(raw, "quantity", false)
		if err == nil && n > item.MaxQuantity {
			err = fmt.Errorf("quantity %d is over 10^9", n)
		}
		if err != nil {
			return nil, problem(bus.CodeInvalidQuantity, err.Error()+"; "+restockHelp)
		}
		d.Quantity = n
	}
	if d.Quantity == 0 {
		return nil, problem(bus.CodeInvalidQuantity, "quantity is missing; "+restockHelp)
	}
	data, _ := json.Marshal(d)
	return data, nil
}

// getItem is GET /items/{id}: the item, from Redis.
func (s *server) getItem(w http.ResponseWriter, r *http.Request) {
	id, perr := itemIDOf(r)
	s.getState(w, r, item.Name, id, perr, problem(bus.CodeItemNotFound, fmt.Sprintf("no item %s: add one with POST /items", id)))
}

// itemsResponse is a page of GET /items: items in the order they were
// added; Next, when there are more, is the cursor of the next page.
type itemsResponse struct {
	Items     []json.RawMessage `json:"items"`
	Next      *string           `json:"next"`
	Timestamp time.Time         `json:"timestamp"`
}

// listItems is GET /items?limit=N&cursor=C: every item in id order (for
// ids the server made, the order they were added), a page at a time, from
// Redis.
func (s *server) listItems(w http.ResponseWriter, r *http.Request) {
	q, perr := queryParams(r, "limit", "cursor")
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	limit, perr := pageLimit(q)
	if perr != nil {
		writeProblem(w, r, perr)
		return
	}
	after := q.Get("cursor")
	if after != "" && (item.CheckID(after) != nil || !utf8.ValidString(after)) {
		writeProblem(w, r, problem(bus.CodeInvalidQuery, fmt.Sprintf("cursor %q is not one this API returned in \"next\"", truncate(after))))
		return
	}
	page, err := s.reads.Index(r.Context(), item.Name, after, limit)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	resp := itemsResponse{Items: make([]json.RawMessage, 0, len(page.IDs)), Timestamp: s.now().UTC()}
	for _, st := range page.States {
		if st != nil { // an item whose state Redis is still being given
			resp.Items = append(resp.Items, st)
		}
	}
	if page.More && len(page.IDs) > 0 {
		next := page.IDs[len(page.IDs)-1]
		resp.Next = &next
	}
	writeJSON(w, http.StatusOK, resp)
}

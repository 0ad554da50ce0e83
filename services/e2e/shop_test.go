package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/item"
	"coffer/pkg/order"
	"coffer/pkg/wallet"
)

// failedOrder is the problem of a failed order.
type failedOrder struct {
	httpapi.Problem
	Order  order.View `json:"order"`
	ItemID string     `json:"item_id"`
}

func orderBody(w string, lines ...string) string {
	return fmt.Sprintf(`{"wallet_id": %q, "lines": [%s]}`, w, strings.Join(lines, ", "))
}

func line(itemID string, n int) string {
	return fmt.Sprintf(`{"item_id": %q, "quantity": %d}`, itemID, n)
}

func (s *stack) addItem(t *testing.T, name string, price, stock int64) item.View {
	t.Helper()
	body := step{"POST", "/items", fmt.Sprintf(`{"name": %q, "price": %d, "stock": %d}`, name, price, stock), nil, 201, ""}.run(t, s)
	return decode[item.View](t, body)
}

func (s *stack) item(t *testing.T, id string) item.View {
	t.Helper()
	return decode[item.View](t, step{"GET", "/items/" + id, "", nil, 200, ""}.run(t, s))
}

// TestShop drives the warehouse and orders as curl would: items added,
// restocked, renamed and listed; an order that completes moves the money to
// the shop's wallet and the units to sold, and shows on the wallet's
// statement; an order an item cannot fill fails naming it, one the wallet
// cannot pay fails for funds, and neither keeps a unit or a cent; a retry
// answers the first outcome; bad input is refused with its code; verify
// finds nothing wrong.
func TestShop(t *testing.T) {
	s := startStack(t)
	shop := order.DefaultShopWalletID
	buyer := ksuid.New().String()
	step{"POST", "/wallet/" + buyer + "/credit", `{"amount": 10000}`, nil, 200, ""}.run(t, s)

	status, hdr, body := s.do("POST", "/items", `{"name": "Blue mug", "price": 1250, "stock": 3}`, map[string]string{"Idempotency-Key": "mug"})
	mug := decode[item.View](t, body)
	if status != 201 || mug.Name != "Blue mug" || mug.Price != 1250 || mug.Stock != 3 || mug.Version != 1 || hdr.Get("Location") != "/items/"+mug.ItemID {
		t.Fatalf("add: %d %s (Location %q)", status, body, hdr.Get("Location"))
	}
	status, hdr, body = s.do("POST", "/items", `{"name": "Blue mug", "price": 1250, "stock": 3}`, map[string]string{"Idempotency-Key": "mug"})
	if status != 201 || hdr.Get(httpapi.ReplayedHeader) != "true" || decode[item.View](t, body).ItemID != mug.ItemID {
		t.Fatalf("add again under the key: %d %s", status, body)
	}
	pot := s.addItem(t, "Teapot", 4000, 1)
	step{"POST", "/items/" + pot.ItemID + "/restock", `{"quantity": 4}`, nil, 200, ""}.run(t, s)
	if got := decode[item.View](t, step{"PATCH", "/items/" + pot.ItemID, `{"name": "Big teapot"}`, nil, 200, ""}.run(t, s)); got.Name != "Big teapot" || got.Price != 4000 || got.Stock != 5 {
		t.Fatalf("rename: %+v", got)
	}
	page := decode[struct {
		Items []item.View `json:"items"`
		Next  *string     `json:"next"`
	}](t, step{"GET", "/items?limit=1", "", nil, 200, ""}.run(t, s))
	if len(page.Items) != 1 || page.Next == nil {
		t.Fatalf("first page of items: %+v", page)
	}
	rest := decode[struct {
		Items []item.View `json:"items"`
		Next  *string     `json:"next"`
	}](t, step{"GET", "/items?cursor=" + *page.Next, "", nil, 200, ""}.run(t, s))
	if len(rest.Items) != 1 || rest.Next != nil || rest.Items[0].ItemID == page.Items[0].ItemID {
		t.Fatalf("second page of items: %+v after %+v", rest, page)
	}

	// An order that completes.
	key := map[string]string{"Idempotency-Key": "order-1"}
	status, hdr, body = s.do("POST", "/orders", orderBody(buyer, line(mug.ItemID, 2), line(pot.ItemID, 1)), key)
	o := decode[order.View](t, body)
	if status != 200 || o.Status != order.StatusCompleted || o.Total != 2*1250+4000 || len(o.Lines) != 2 || o.Lines[0].Price != 1250 ||
		o.Lines[0].Amount != 2500 || o.ShopWalletID != shop || o.TransferID != order.PaymentID(o.OrderID) || hdr.Get("Location") != "/orders/"+o.OrderID {
		t.Fatalf("order: %d %s", status, body)
	}
	if got := s.item(t, mug.ItemID); got.Stock != 1 || got.Reserved != 0 || got.Sold != 2 {
		t.Fatalf("the mug after the order: %+v", got)
	}
	if got := s.balanceOf(t, buyer); got.Balance != 10000-6500 || got.Held != 0 {
		t.Fatalf("the buyer after the order: %+v", got)
	}
	if got := s.balanceOf(t, shop); got.Balance != 6500 {
		t.Fatalf("the shop after the order: %+v", got)
	}
	tx := decode[txPage](t, step{"GET", "/wallet/" + buyer + "/transactions", "", nil, 200, ""}.run(t, s)).Transactions[0]
	if tx.Type != wallet.TransferredOut || tx.Amount != -6500 || tx.OrderID != o.OrderID || tx.TransferID != o.TransferID || tx.Counterpart != shop {
		t.Fatalf("the buyer's statement: %+v", tx)
	}
	status, hdr, body = s.do("POST", "/orders", orderBody(buyer, line(mug.ItemID, 2), line(pot.ItemID, 1)), key)
	if status != 200 || hdr.Get(httpapi.ReplayedHeader) != "true" || decode[order.View](t, body).OrderID != o.OrderID {
		t.Fatalf("retry of the order: %d %s", status, body)
	}
	if got := s.item(t, mug.ItemID); got.Sold != 2 {
		t.Fatalf("a retry sold again: %+v", got)
	}
	if got := decode[order.View](t, step{"GET", "/orders/" + o.OrderID, "", nil, 200, ""}.run(t, s)); got.Status != order.StatusCompleted || len(got.Steps) != 4 {
		t.Fatalf("GET the order: %+v", got)
	}

	// Not enough mugs: the order fails naming the mug, and the teapot it
	// reserved first goes back.
	body = step{"POST", "/orders", orderBody(buyer, line(pot.ItemID, 1), line(mug.ItemID, 2)), nil, 409, bus.CodeOutOfStock}.run(t, s)
	if f := decode[failedOrder](t, body); f.ItemID != mug.ItemID || f.Order.Status != order.StatusFailed || f.Order.ItemID != mug.ItemID {
		t.Fatalf("an order the mug cannot fill: %s", body)
	}
	if got := s.item(t, pot.ItemID); got.Stock != 4 || got.Reserved != 0 || got.Sold != 1 {
		t.Fatalf("the teapot after a failed order: %+v", got)
	}
	// Not enough money: fails for funds; every unit goes back.
	poor := ksuid.New().String()
	step{"POST", "/wallet/" + poor + "/credit", `{"amount": 100}`, nil, 200, ""}.run(t, s)
	body = step{"POST", "/orders", orderBody(poor, line(pot.ItemID, 2)), nil, 409, bus.CodeInsufficientFunds}.run(t, s)
	if f := decode[failedOrder](t, body).Order; f.Total != 8000 || f.Steps[len(f.Steps)-2].Step != order.PaymentFailed {
		t.Fatalf("an order the wallet cannot pay: %s", body)
	}
	if got := s.item(t, pot.ItemID); got.Stock != 4 || got.Reserved != 0 {
		t.Fatalf("the teapot after an unpaid order: %+v", got)
	}
	if got := s.balanceOf(t, poor); got.Balance != 100 || got.Held != 0 {
		t.Fatalf("the poor wallet: %+v", got)
	}
	unknown := ksuid.New().String()
	step{"POST", "/orders", orderBody(buyer, line(unknown, 1)), nil, 404, bus.CodeItemNotFound}.run(t, s)

	// /api runs the shop's commands as their routes do.
	added := decode[item.View](t, step{"POST", "/api", `{"command": "item_add", "data": {"name": "Spoon", "price": 100, "stock": 1}}`, nil, 201, ""}.run(t, s))
	step{"POST", "/api", `{"command": "item_restock", "data": {"item_id": "` + added.ItemID + `", "quantity": 2}}`, nil, 200, ""}.run(t, s)
	placed := decode[order.View](t, step{"POST", "/api", `{"command": "order_place", "data": ` + orderBody(buyer, line(added.ItemID, 3)) + `}`, nil, 200, ""}.run(t, s))
	if placed.Total != 300 || s.item(t, added.ItemID).Sold != 3 {
		t.Fatalf("an order by /api: %+v", placed)
	}

	for _, c := range []step{
		{"POST", "/items", `{"name": "", "price": 1}`, nil, 400, bus.CodeInvalidName},
		{"POST", "/items", `{"name": "x"}`, nil, 400, bus.CodeInvalidPrice},
		{"POST", "/items", `{"name": "x", "price": 1.5}`, nil, 400, bus.CodeInvalidPrice},
		{"POST", "/items", `{"name": "x", "price": 1, "stock": -1}`, nil, 400, bus.CodeInvalidQuantity},
		{"POST", "/items", `{"name": "x", "price": 1, "colour": "red"}`, nil, 400, bus.CodeInvalidBody},
		{"POST", "/items/" + mug.ItemID + "/restock", `{"quantity": 0}`, nil, 400, bus.CodeInvalidQuantity},
		{"POST", "/items/" + unknown + "/restock", `{"quantity": 1}`, nil, 404, bus.CodeItemNotFound},
		{"PATCH", "/items/" + mug.ItemID, `{}`, nil, 400, bus.CodeInvalidBody},
		{"GET", "/items/nope", "", nil, 400, bus.CodeInvalidItemID},
		{"GET", "/items/" + unknown, "", nil, 404, bus.CodeItemNotFound},
		{"GET", "/items?limit=0", "", nil, 400, bus.CodeInvalidQuery},
		{"GET", "/items?cursor=nope", "", nil, 400, bus.CodeInvalidQuery},
		{"POST", "/orders", orderBody(buyer), nil, 400, bus.CodeInvalidLines},
		{"POST", "/orders", orderBody(buyer, line(mug.ItemID, 1), line(mug.ItemID, 1)), nil, 400, bus.CodeInvalidLines},
		{"POST", "/orders", orderBody(buyer, line(mug.ItemID, 0)), nil, 400, bus.CodeInvalidQuantity},
		{"POST", "/orders", orderBody(buyer, line("nope", 1)), nil, 400, bus.CodeInvalidItemID},
		{"POST", "/orders", orderBody("nope", line(mug.ItemID, 1)), nil, 400, bus.CodeInvalidWalletID},
		{"POST", "/orders", orderBody(shop, line(mug.ItemID, 1)), nil, 400, bus.CodeSameWallet},
		{"POST", "/orders", `{"wallet_id": "` + buyer + `", "lines": [{"item_id": "` + mug.ItemID + `", "quantity": 1, "price": 1}]}`, nil, 400, bus.CodeInvalidLines},
		{"GET", "/orders/nope", "", nil, 400, bus.CodeInvalidOrderID},
		{"GET", "/orders/" + unknown, "", nil, 404, bus.CodeOrderNotFound},
	} {
		c.run(t, s)
	}
	if got := s.item(t, mug.ItemID); got.Stock != 1 || got.Sold != 2 {
		t.Fatalf("bad requests moved mugs: %+v", got)
	}
	out, err := s.tool(t, "verify")
	if err != nil || !strings.Contains(out, "5 orders: 2 completed, 3 failed, 0 pending, 6800 paid in all") || !strings.Contains(out, "orders") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestConcurrentOrders: 1,000 orders of one unit at once on an item with
// 400 in stock → exactly 400 complete and 600 fail out of stock; every unit
// and every cent is where it should be.
func TestConcurrentOrders(t *testing.T) {
	s := startStack(t)
	const n, stock = 1000, 400
	it := s.addItem(t, "Limited print", 10, stock)
	buyers := make([]string, 20)
	for i := range buyers {
		buyers[i] = ksuid.New().String()
		step{"POST", "/wallet/" + buyers[i] + "/credit", `{"amount": 100000}`, nil, 200, ""}.run(t, s)
	}
	ids := s.rush(t, n, "/orders", func(i int) string { return orderBody(buyers[i%len(buyers)], line(it.ItemID, 1)) })
	counts := s.ends(t, 90*time.Second, "/orders/", ids)
	if counts["completed"] != stock || counts["failed"] != n-stock {
		t.Fatalf("%v, want %d completed", counts, stock)
	}
	if got := s.item(t, it.ItemID); got.Stock != 0 || got.Reserved != 0 || got.Sold != stock {
		t.Fatalf("the item after the rush: %+v", got)
	}
	var spent int64
	for _, b := range buyers {
		spent += 100000 - s.balanceOf(t, b).Balance
	}
	if shop := s.balanceOf(t, order.DefaultShopWalletID).Balance; spent != stock*10 || shop != stock*10 {
		t.Fatalf("the buyers spent %d, the shop has %d; want %d each", spent, shop, stock*10)
	}
	if out, err := s.tool(t, "verify"); err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

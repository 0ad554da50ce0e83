"""Load Coffer with credits and debits, then check that no money was lost or made.

    python3 -m utils.loadtest --url http://127.0.0.1:8080 --wallets 100 --workers 16 --duration 30
    python3 -m utils.loadtest --overdraft 500 --lifecycle-ratio 0.05   # wallets' lifecycle too
    python3 -m utils.loadtest --hold-ratio 0.3 --hold-expires-in 5      # holds captured, voided, expired
    python3 -m utils.loadtest --transfer-ratio 0.5                      # transfers between the wallets
    python3 -m utils.loadtest --reversal-ratio 0.2                      # credits and debits taken back
    python3 -m utils.loadtest --orders --items 10 --stock 100           # the shop: orders of its items

Each operation carries its own Idempotency-Key and is retried with the same
key on 503, 504 and connection errors until it gets a definite answer (200
applied, 409 refused), so retries can never apply it twice. With
--overdraft the wallets are opened with that overdraft limit; with
--lifecycle-ratio that share of the operations freezes or unfreezes a wallet
(a frozen one refuses debits with 409 wallet_frozen and still takes
credits); with --hold-ratio that share places a hold and then captures part
of it, voids it, or leaves it to expire (a third each); with
--transfer-ratio that share moves money from the wallet to another with
POST /transfers (200 completed, 409 failed; a 202, still pending, is
followed to its end with GET /transfers/{id}); with --reversal-ratio that
share of the credits and debits applied is taken back at once with POST
/wallet/{id}/transactions/{tx_id}/reverse; with --orders (a share, 0.5 if
given alone) that share places an order of one to three of --items items
the tool adds (with --stock units each, and now and then a restock) with
POST /orders (200 completed, 409 failed for stock or funds, 202 followed to
its end with GET /orders/{id}). At the end the tool prints
throughput and latency percentiles, waits for the holds left to expire and
the transfers left pending to end, then reads every wallet's balance and
compares it with the sum of the operations the API acknowledged (credits,
less debits and captures, less transfers out, plus transfers in), checks
none is below minus its overdraft limit and none still holds anything, and
that the total is what the external credits and debits made it (transfers
move money, never make it; orders move it to the shop's wallet, which must
have grown by what the completed orders paid). With --orders it also checks
each item's units: initial + restocked = stock + reserved + sold, none left
reserved, and sold what the completed orders bought. It exits 1 on any mismatch or any operation
whose outcome stayed unknown.
"""

import argparse
import os
import json
import random
import sys
import threading
import time
import uuid

if not __package__:
    # Run as a file (python3 utils/loadtest.py) rather than as a module
    # (python3 -m utils.loadtest): the utils package is beside this file.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils._http import Conn, percentile

RETRY_STATUSES = {503, 504}

# The 409 codes of a refusal the API records: a definite outcome, no money moved.
REFUSALS = {"insufficient_funds", "wallet_frozen", "wallet_not_frozen", "hold_not_active"}


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python3 -m utils.loadtest",
        description="Credit/debit load against Coffer's HTTP API, with a money-conservation check at the end.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8080", help="wallet_server base URL (default %(default)s)")
    p.add_argument("--wallets", type=int, default=100, help="wallets to spread the load over (default %(default)s)")
    p.add_argument("--workers", type=int, default=16, help="concurrent clients (default %(default)s)")
    p.add_argument("--duration", type=float, help="seconds of load (default 10 unless --count is given)")
    p.add_argument("--count", type=int, help="operations in all, instead of a duration")
    p.add_argument("--debit-ratio", type=float, default=0.4, help="share of debits, 0 to 1 (default %(default)s)")
    p.add_argument("--max-amount", type=int, default=1000, help="largest amount in minor units (default %(default)s)")
    p.add_argument("--overdraft", type=int, default=0, help="open the wallets with this overdraft limit, in minor units (default %(default)s)")
    p.add_argument("--lifecycle-ratio", type=float, default=0.0,
                   help="share of operations that freeze or unfreeze a wallet, 0 to 1 (default %(default)s)")
    p.add_argument("--hold-ratio", type=float, default=0.0,
                   help="share of operations that place a hold, then capture part of it, void it or let it expire (default %(default)s)")
    p.add_argument("--hold-expires-in", type=int, default=5, help="seconds a hold lasts (default %(default)s)")
    p.add_argument("--transfer-ratio", type=float, default=0.0,
                   help="share of operations that transfer money to another of the wallets (default %(default)s)")
    p.add_argument("--reversal-ratio", type=float, default=0.0,
                   help="share of the credits and debits applied that are taken back (reversed) at once (default %(default)s)")
    p.add_argument("--orders", type=float, nargs="?", const=0.5, default=0.0, metavar="RATIO",
                   help="share of operations that place an order of the shop's items (0.5 if given alone; default none)")
    p.add_argument("--items", type=int, default=10, help="with --orders: items to add to the shop (default %(default)s)")
    p.add_argument("--stock", type=int, default=100, help="with --orders: each item's first stock (default %(default)s)")
    p.add_argument("--shop-wallet", default="2ShopWa11etCofferDefau1t000",
                   help="with --orders: the server's SHOP_WALLET_ID, where orders pay (default %(default)s, the server's default)")
    p.add_argument("--retries", type=int, default=20, help="retries of one operation on 503/504/errors (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one answer (default %(default)s)")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable mix")
    a = p.parse_args(argv)
    if a.wallets < 1 or a.workers < 1:
        p.error("--wallets and --workers must be at least 1")
    if not 0 <= a.debit_ratio <= 1:
        p.error("--debit-ratio must be between 0 and 1")
    if not 0 <= a.lifecycle_ratio <= 1:
        p.error("--lifecycle-ratio must be between 0 and 1")
    if not 0 <= a.hold_ratio <= 1 or a.lifecycle_ratio + a.hold_ratio > 1:
        p.error("--hold-ratio must be between 0 and 1, and with --lifecycle-ratio at most 1")
    if not 0 <= a.transfer_ratio <= 1 or a.lifecycle_ratio + a.hold_ratio + a.transfer_ratio > 1:
        p.error("--transfer-ratio must be between 0 and 1, and with --lifecycle-ratio and --hold-ratio at most 1")
    if not 0 <= a.reversal_ratio <= 1:
        p.error("--reversal-ratio must be between 0 and 1")
    if not 0 <= a.orders <= 1 or a.lifecycle_ratio + a.hold_ratio + a.transfer_ratio + a.orders > 1:
        p.error("--orders must be between 0 and 1, and with the other ratios at most 1")
    if a.orders and (a.items < 1 or not 0 <= a.stock <= 10**12):
        p.error("--orders needs at least 1 --item and a --stock from 0 to 10^12")
    if a.transfer_ratio and a.wallets < 2:
        p.error("--transfer-ratio needs at least 2 --wallets")
    if a.hold_expires_in < 1:
        p.error("--hold-expires-in must be at least 1 second")
    if not 0 <= a.overdraft <= 10**15:
        p.error("--overdraft must be from 0 to 10^15")
    if a.max_amount < 1:
        p.error("--max-amount must be at least 1")
    if a.duration is None and a.count is None:
        a.duration = 10.0
    return a


class Ledger:
    """What the API acknowledged, per wallet, and how each request went."""

    def __init__(self, wallets):
        self.lock = threading.Lock()
        self.wallets = list(wallets)
        self.acked = {w: 0 for w in wallets}
        self.applied = 0
        self.lifecycle = 0
        self.holds = {"placed": 0, "captured": 0, "voided": 0, "left": 0}
        self.transfers = {"completed": 0, "failed": 0, "pending": 0}
        self.reversals = {"reversed": 0, "refused": 0}
        self.pending = []  # (transfer id, from, to, amount) answered 202
        self.orders = {"completed": 0, "failed": 0}
        self.pending_orders = []  # (order id, wallet) answered 202
        self.items = {}  # item id -> {"price", "stock", "restocked", "sold"}
        self.shop = None  # the shop's wallet, from the first order's answer
        self.paid = 0  # what the completed orders paid the shop
        self.restocks = 0
        self.external = 0  # credits less debits and captures: what the total must be
        self.refused = 0
        self.unknown = 0
        self.retries = 0
        self.errors = {}
        self.latencies = []

    def record(self, wallet, delta, outcome, latencies, retries):
        with self.lock:
            self.latencies.extend(latencies)
            self.retries += retries
            if outcome == "applied":
                self.acked[wallet] += delta
                self.external += delta
                self.applied += 1
            elif outcome == "lifecycle":
                self.lifecycle += 1
            elif outcome == "transfer":
                pass  # counted by transfer() or order(), once it has ended
            elif outcome == "restock":
                self.restocks += 1
            elif outcome in self.holds:
                self.holds[outcome] += 1
                self.acked[wallet] += delta
                self.external += delta
            elif outcome == "refused":
                self.refused += 1
            else:
                self.unknown += 1
                self.errors[outcome] = self.errors.get(outcome, 0) + 1

    def order(self, wallet, view):
        """Record an order that ended, from its view."""
        with self.lock:
            self.orders[view["status"]] += 1
            self.shop = self.shop or view["shop_wallet_id"]
            if view["status"] == "completed":
                self.acked[wallet] -= view["total"]
                self.paid += view["total"]
                for line in view["lines"]:
                    self.items[line["item_id"]]["sold"] += line["quantity"]

    def transfer(self, source, target, amount, status):
        """Record a transfer that ended (completed or failed) or is pending."""
        with self.lock:
            self.transfers[status] += 1
            if status == "completed":
                self.acked[source] -= amount
                self.acked[target] += amount


def send(conn, a, path, body):
    """POST body to path with its own Idempotency-Key, retried with that key
    until the outcome is known: (status, answer, latencies, outcome), the
    outcome "ok", "refused" (a recorded 409 refusal) or why it is unknown."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    latencies, outcome, status, answer = [], "no answer", 0, b""
    for attempt in range(a.retries + 1):
        start = time.perf_counter()
        try:
            status, hdrs, answer = conn.request("POST", path, body, headers)
        except OSError as e:
            latencies.append(time.perf_counter() - start)
            outcome = f"connection error ({type(e).__name__})"
            time.sleep(min(1.0, 0.05 * 2**attempt))
            continue
        latencies.append(time.perf_counter() - start)
        if status in (200, 201, 202):
            return status, json.loads(answer), latencies, "ok"
        if status == 409 and (json.loads(answer).get("code") in REFUSALS or "transfer" in json.loads(answer) or "order" in json.loads(answer)):
            return status, json.loads(answer), latencies, "refused"
        if status in RETRY_STATUSES:
            outcome = f"HTTP {status}"
            wait = float(hdrs.get("Retry-After") or 0) or 0.05 * 2**attempt
            time.sleep(min(1.0, wait))
            continue
        return status, answer, latencies, f"HTTP {status}: {answer[:200].decode(errors='replace')}"
    return status, answer, latencies, outcome


def operate(conn, a, rng, wallet, ledger):
    """One credit, debit, freeze, unfreeze or hold (with its end), each
    request retried with its key until its outcome is known."""
    r = rng.random()
    if r < a.lifecycle_ratio:
        _, _, latencies, outcome = send(conn, a, f"/wallet/{wallet}/{rng.choice(('freeze', 'unfreeze'))}", None)
        ledger.record(wallet, 0, "lifecycle" if outcome == "ok" else outcome, latencies, max(0, len(latencies) - 1))
        return
    amount = rng.randint(1, a.max_amount)
    if r < a.lifecycle_ratio + a.hold_ratio:
        hold(conn, a, rng, wallet, amount, ledger)
        return
    if r < a.lifecycle_ratio + a.hold_ratio + a.transfer_ratio:
        transfer(conn, a, rng, wallet, amount, ledger)
        return
    if r < a.lifecycle_ratio + a.hold_ratio + a.transfer_ratio + a.orders:
        shop(conn, a, rng, wallet, ledger)
        return
    debit = rng.random() < a.debit_ratio
    action, delta = ("debit", -amount) if debit else ("credit", amount)
    _, answer, latencies, outcome = send(conn, a, f"/wallet/{wallet}/{action}", {"amount": amount})
    ledger.record(wallet, delta, "applied" if outcome == "ok" else outcome, latencies, max(0, len(latencies) - 1))
    if outcome == "ok" and rng.random() < a.reversal_ratio:
        reverse(conn, a, wallet, answer["transaction"]["id"], delta, ledger)


def reverse(conn, a, wallet, tx, delta, ledger):
    """Take back a credit or debit that moved delta: -delta if applied; a
    credit the wallet no longer has is refused (409), and moves nothing."""
    _, _, latencies, outcome = send(conn, a, f"/wallet/{wallet}/transactions/{tx}/reverse", None)
    ledger.record(wallet, -delta, "applied" if outcome == "ok" else outcome, latencies, max(0, len(latencies) - 1))
    with ledger.lock:
        if outcome in ("ok", "refused"):
            ledger.reversals["reversed" if outcome == "ok" else "refused"] += 1


def hold(conn, a, rng, wallet, amount, ledger):
    """Place a hold of amount, then capture part of it, void it, or leave it to expire."""
    _, answer, latencies, outcome = send(conn, a, f"/wallet/{wallet}/holds", {"amount": amount, "expires_in": a.hold_expires_in})
    ledger.record(wallet, 0, "placed" if outcome == "ok" else outcome, latencies, max(0, len(latencies) - 1))
    if outcome != "ok":
        return
    end = rng.choice(("capture", "void", "left"))
    if end == "left":
        ledger.record(wallet, 0, "left", [], 0)
        return
    path = f"/wallet/{wallet}/holds/{answer['hold_id']}/{end}"
    body = {"amount": rng.randint(1, amount)} if end == "capture" else None
    _, answer, latencies, outcome = send(conn, a, path, body)
    if outcome == "ok":
        ledger.record(wallet, -answer["captured"], "captured" if end == "capture" else "voided", latencies, max(0, len(latencies) - 1))
    else:  # refused: it expired first (hold_not_active), no money moved
        ledger.record(wallet, 0, outcome, latencies, max(0, len(latencies) - 1))


def transfer(conn, a, rng, source, amount, ledger):
    """Move amount from source to another wallet: 200 completed, 409 failed
    (nothing moved), 202 pending (followed to its end after the load)."""
    target = source
    while target == source:
        target = rng.choice(ledger.wallets)
    status, answer, latencies, outcome = send(conn, a, "/transfers", {"from": source, "to": target, "amount": amount})
    ledger.record(source, 0, "transfer" if outcome in ("ok", "refused") else outcome, latencies, max(0, len(latencies) - 1))
    if outcome == "refused":
        ledger.transfer(source, target, amount, "failed")
    elif outcome == "ok" and status == 202:
        with ledger.lock:
            ledger.pending.append((answer["transfer_id"], source, target, amount))
    elif outcome == "ok":
        ledger.transfer(source, target, amount, "completed")


def shop(conn, a, rng, wallet, ledger):
    """Now and then restock an item; else order one to three of them: 200
    completed, 409 failed (out of stock, or the wallet cannot pay), 202
    pending (followed to its end after the load)."""
    items = list(ledger.items)
    if rng.random() < 0.1:
        item, n = rng.choice(items), rng.randint(1, 20)
        _, _, latencies, outcome = send(conn, a, f"/items/{item}/restock", {"quantity": n})
        ledger.record(wallet, 0, "restock" if outcome == "ok" else outcome, latencies, max(0, len(latencies) - 1))
        if outcome == "ok":
            with ledger.lock:
                ledger.items[item]["restocked"] += n
        return
    lines = [{"item_id": i, "quantity": rng.randint(1, 3)} for i in rng.sample(items, rng.randint(1, min(3, len(items))))]
    status, answer, latencies, outcome = send(conn, a, "/orders", {"wallet_id": wallet, "lines": lines})
    ledger.record(wallet, 0, "transfer" if outcome in ("ok", "refused") else outcome, latencies, max(0, len(latencies) - 1))
    if outcome == "refused":
        ledger.order(wallet, answer["order"])
    elif outcome == "ok" and status == 202:
        with ledger.lock:
            ledger.pending_orders.append((answer["order_id"], wallet))
    elif outcome == "ok":
        ledger.order(wallet, answer)


def add_items(a, ledger):
    conn = Conn(a.url, a.timeout)
    try:
        for i in range(a.items):
            price = random.randint(1, max(1, a.max_amount // 10))
            status, _, body = conn.request("POST", "/items", {"name": f"loadtest item {i}", "price": price, "stock": a.stock})
            if status != 201:
                raise SystemExit(f"loadtest: POST /items answered {status}: {body[:200]!r}")
            ledger.items[json.loads(body)["item_id"]] = {"price": price, "stock": a.stock, "restocked": 0, "sold": 0}
    finally:
        conn.close()


def settle_orders(conn, ledger, within=60):
    """Follow the orders answered 202 until each ends, at most within
    seconds; record each; return how long it took and how many never ended."""
    start = time.monotonic()
    left = list(ledger.pending_orders)
    while left and time.monotonic() - start < within:
        oid, wallet = left[0]
        status, _, body = conn.request("GET", f"/orders/{oid}")
        view = json.loads(body) if status == 200 else {}
        if view.get("status") in ("completed", "failed"):
            ledger.order(wallet, view)
            left.pop(0)
        else:
            time.sleep(0.1)
    return time.monotonic() - start, len(left)


def check_items(conn, ledger):
    """Each item's units: initial + restocked = stock + reserved + sold, none
    reserved, sold what the completed orders bought; return the mismatches."""
    out = []
    for item, want in ledger.items.items():
        status, _, body = conn.request("GET", f"/items/{item}")
        got = json.loads(body) if status == 200 else {}
        ok = (status == 200 and got["reserved"] == 0 and got["sold"] == want["sold"] and got["restocked"] == want["restocked"]
              and got["initial_stock"] + got["restocked"] == got["stock"] + got["reserved"] + got["sold"])
        if not ok:
            out.append((item, body[:300].decode(errors="replace"), want))
    return out


def settle_transfers(conn, ledger, within=60):
    """Follow the transfers answered 202 until each ends, at most within
    seconds; record each; return how long it took and how many never ended."""
    start = time.monotonic()
    left = list(ledger.pending)
    while left and time.monotonic() - start < within:
        tid, source, target, amount = left[0]
        status, _, body = conn.request("GET", f"/transfers/{tid}")
        state = json.loads(body).get("status") if status == 200 else None
        if state in ("completed", "failed"):
            ledger.transfer(source, target, amount, state)
            left.pop(0)
        else:
            time.sleep(0.1)
    return time.monotonic() - start, len(left)


def wallet_balance(a, wallet):
    """A wallet's balance (0 for one nobody used)."""
    conn = Conn(a.url, a.timeout)
    try:
        status, _, body = conn.request("GET", f"/wallet/{wallet}/balance")
        if status != 200:
            raise SystemExit(f"loadtest: GET /wallet/{wallet}/balance answered {status}: {body[:200]!r}")
        return json.loads(body)["balance"]
    finally:
        conn.close()


def mint_wallets(a):
    conn = Conn(a.url, a.timeout)
    try:
        out = []
        profile = {"owner": "utils.loadtest", "overdraft_limit": a.overdraft} if a.overdraft else None
        for _ in range(a.wallets):
            status, _, body = conn.request("POST", "/wallet", profile)
            if status != 201:
                raise SystemExit(f"loadtest: POST /wallet answered {status}: {body[:200]!r}")
            out.append(json.loads(body)["wallet_id"])
        return out
    finally:
        conn.close()


def run_load(a, wallets, ledger):
    stop = threading.Event()
    budget = [a.count]
    budget_lock = threading.Lock()

    def take():
        if budget[0] is None:
            return True
        with budget_lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker(i):
        rng = random.Random(None if a.seed is None else a.seed * 1000 + i)
        conn = Conn(a.url, a.timeout)
        try:
            while not stop.is_set() and take():
                operate(conn, a, rng, rng.choice(wallets), ledger)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            if a.duration is not None and time.monotonic() - start >= a.duration:
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("loadtest: interrupted; finishing the operations in flight", file=sys.stderr)
    stop.set()
    for t in threads:
        t.join()
    return time.monotonic() - start


def check_conservation(acked, balance_of, overdraft=0):
    """Compare each wallet's balance with its acknowledged sum, and with minus
    the overdraft limit it must never go below; return the mismatches.
    balance_of returns a balance, or (balance, held) where nothing may be held."""
    mismatches = []
    for wallet, want in acked.items():
        got = balance_of(wallet)
        held = 0
        if isinstance(got, tuple):
            got, held = got
        if got != want or held != 0 or (isinstance(got, int) and got < -overdraft):
            mismatches.append((wallet, got if not held else f"{got} with {held} still held", want))
    return mismatches


def wait_for_holds(conn, a, wallets):
    """Wait until no wallet holds anything (the holds left to expire have
    expired), at most --hold-expires-in plus 10 seconds; return how long."""
    start = time.monotonic()
    deadline = start + a.hold_expires_in + 10
    pending = list(wallets)
    while pending and time.monotonic() < deadline:
        status, _, body = conn.request("GET", f"/wallet/{pending[0]}/balance")
        if status == 200 and json.loads(body)["held"] == 0:
            pending.pop(0)
        else:
            time.sleep(0.2)
    return time.monotonic() - start


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    wallets = mint_wallets(a)
    ledger = Ledger(wallets)
    shop_start = 0
    if a.orders:
        add_items(a, ledger)
        shop_start = wallet_balance(a, a.shop_wallet)
    print(f"loadtest: {a.workers} workers on {len(wallets)} wallets against {a.url}", flush=True)
    elapsed = run_load(a, wallets, ledger)

    done = ledger.applied + ledger.lifecycle + ledger.refused + ledger.unknown
    lat = sorted(ledger.latencies)
    ms = lambda s: f"{s * 1000:.1f}ms"  # noqa: E731
    done += sum(ledger.holds.values()) - ledger.holds["left"]
    done += len(ledger.pending) + ledger.transfers["completed"] + ledger.transfers["failed"]
    done += len(ledger.pending_orders) + ledger.orders["completed"] + ledger.orders["failed"] + ledger.restocks
    print(f"operations  {done} in {elapsed:.1f}s = {done / elapsed if elapsed else 0:.0f} ops/s"
          f"  (applied {ledger.applied}, lifecycle {ledger.lifecycle}, refused {ledger.refused}, unknown {ledger.unknown}, retries {ledger.retries})")
    if a.hold_ratio:
        h = ledger.holds
        print(f"holds       {h['placed']} placed: {h['captured']} captured, {h['voided']} voided, {h['left']} left to expire")
    if a.reversal_ratio:
        r = ledger.reversals
        print(f"reversals   {r['reversed']} credits and debits taken back, {r['refused']} refused")
    if a.transfer_ratio:
        t = ledger.transfers
        print(f"transfers   {t['completed']} completed, {t['failed']} failed, {len(ledger.pending)} pending at the end of the load (202)")
    if a.orders:
        o = ledger.orders
        print(f"orders      {o['completed']} completed, {o['failed']} failed, {len(ledger.pending_orders)} pending at the end of the load (202);"
              f" {ledger.restocks} restocks")
    print(f"latency     p50 {ms(percentile(lat, 50))}  p90 {ms(percentile(lat, 90))}"
          f"  p99 {ms(percentile(lat, 99))}  max {ms(lat[-1] if lat else 0)}")
    for err, n in sorted(ledger.errors.items()):
        print(f"unknown outcome: {n} x {err}")

    conn = Conn(a.url, a.timeout)
    if a.hold_ratio:
        print(f"holds       every hold ended within {wait_for_holds(conn, a, wallets):.1f}s of the end of the load")
    stuck = 0
    if ledger.pending:
        took, stuck = settle_transfers(conn, ledger)
        print(f"transfers   the pending ones ended within {took:.1f}s of the end of the load; {stuck} never did")
    if ledger.pending_orders:
        took, stuck_orders = settle_orders(conn, ledger)
        stuck += stuck_orders
        print(f"orders      the pending ones ended within {took:.1f}s of the end of the load; {stuck_orders} never did")

    def balance_of(wallet):
        status, _, body = conn.request("GET", f"/wallet/{wallet}/balance")
        if status != 200:
            return f"HTTP {status}"
        b = json.loads(body)
        return (b["balance"], b["held"])

    balances = {}

    def remember(wallet):
        balances[wallet] = balance_of(wallet)
        return balances[wallet]

    mismatches = check_conservation(ledger.acked, remember, a.overdraft)
    item_mismatches, shop_grew = [], 0
    if a.orders:
        item_mismatches = check_items(conn, ledger)
        shop_grew = wallet_balance(a, a.shop_wallet) - shop_start
        if ledger.shop and ledger.shop != a.shop_wallet:
            print(f"MISMATCH shop: the orders paid wallet {ledger.shop}; pass it with --shop-wallet")
            item_mismatches.append(("shop", ledger.shop, a.shop_wallet))
        elif shop_grew != ledger.paid:
            print(f"MISMATCH shop: its wallet grew by {shop_grew}; the completed orders paid {ledger.paid}")
            item_mismatches.append(("shop", shop_grew, ledger.paid))
        for item, got, want in item_mismatches[: len(item_mismatches)]:
            if item != "shop":
                print(f"MISMATCH item {item}: {got}; the load says {want}")
    conn.close()
    for wallet, got, want in mismatches:
        print(f"MISMATCH wallet {wallet}: balance {got}, acknowledged operations sum to {want}"
              f" (overdraft limit {a.overdraft})")
    total = sum(b[0] for b in balances.values() if isinstance(b, tuple))
    if total != ledger.external:
        print(f"MISMATCH total: the balances sum to {total}, acknowledged credits less debits and captures to {ledger.external}")
    total += shop_grew
    if mismatches or item_mismatches or ledger.unknown or stuck or total != ledger.external:
        print(f"conservation FAILED: {len(mismatches)} mismatched wallets, {len(item_mismatches)} mismatched items or shop, "
              f"{ledger.unknown} operations with unknown outcome, {stuck} transfers or orders that never ended, total {total} against {ledger.external}")
        return 1
    if a.orders:
        print(f"units OK: {len(ledger.items)} items, each initial + restocked = stock + reserved + sold, none left reserved, "
              f"sold what the {ledger.orders['completed']} completed orders bought; the shop's wallet grew by the {ledger.paid} they paid")
    print(f"conservation OK: {len(wallets)} wallets, every balance equals its acknowledged operations, "
          f"and the total {total} is what the external credits and debits made it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

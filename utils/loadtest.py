"""Load Coffer with credits and debits, then check that no money was lost or made.

    python3 -m utils.loadtest --url http://127.0.0.1:8080 --wallets 100 --workers 16 --duration 30
    python3 -m utils.loadtest --overdraft 500 --lifecycle-ratio 0.05   # wallets' lifecycle too

Each operation carries its own Idempotency-Key and is retried with the same
key on 503, 504 and connection errors until it gets a definite answer (200
applied, 409 refused), so retries can never apply it twice. With
--overdraft the wallets are opened with that overdraft limit; with
--lifecycle-ratio that share of the operations freezes or unfreezes a wallet
(a frozen one refuses debits with 409 wallet_frozen and still takes
credits). At the end the tool prints throughput and latency percentiles,
then reads every wallet's balance and compares it with the sum of the
operations the API acknowledged, and checks none is below minus its
overdraft limit. It exits 1 on any mismatch or any operation whose outcome
stayed unknown.
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
REFUSALS = {"insufficient_funds", "wallet_frozen", "wallet_not_frozen"}


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
        self.acked = {w: 0 for w in wallets}
        self.applied = 0
        self.lifecycle = 0
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
                self.applied += 1
            elif outcome == "lifecycle":
                self.lifecycle += 1
            elif outcome == "refused":
                self.refused += 1
            else:
                self.unknown += 1
                self.errors[outcome] = self.errors.get(outcome, 0) + 1


def operate(conn, a, rng, wallet, ledger):
    """One credit, debit, freeze or unfreeze, retried with its key until the outcome is known."""
    body, delta = None, 0
    if rng.random() < a.lifecycle_ratio:
        action = rng.choice(("freeze", "unfreeze"))
    else:
        debit = rng.random() < a.debit_ratio
        amount = rng.randint(1, a.max_amount)
        action, body, delta = ("debit", {"amount": amount}, -amount) if debit else ("credit", {"amount": amount}, amount)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    latencies, outcome = [], "no answer"
    for attempt in range(a.retries + 1):
        start = time.perf_counter()
        try:
            status, hdrs, answer = conn.request("POST", f"/wallet/{wallet}/{action}", body, headers)
        except OSError as e:
            latencies.append(time.perf_counter() - start)
            outcome = f"connection error ({type(e).__name__})"
            time.sleep(min(1.0, 0.05 * 2**attempt))
            continue
        latencies.append(time.perf_counter() - start)
        if status == 200:
            outcome = "applied" if body else "lifecycle"
            break
        if status == 409 and json.loads(answer).get("code") in REFUSALS:
            outcome = "refused"
            break
        if status in RETRY_STATUSES:
            outcome = f"HTTP {status}"
            wait = float(hdrs.get("Retry-After") or 0) or 0.05 * 2**attempt
            time.sleep(min(1.0, wait))
            continue
        outcome = f"HTTP {status}: {answer[:200].decode(errors='replace')}"
        break
    ledger.record(wallet, delta, outcome, latencies, max(0, len(latencies) - 1))


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
    the overdraft limit it must never go below; return the mismatches."""
    mismatches = []
    for wallet, want in acked.items():
        got = balance_of(wallet)
        if got != want or (isinstance(got, int) and got < -overdraft):
            mismatches.append((wallet, got, want))
    return mismatches


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    wallets = mint_wallets(a)
    ledger = Ledger(wallets)
    print(f"loadtest: {a.workers} workers on {len(wallets)} wallets against {a.url}", flush=True)
    elapsed = run_load(a, wallets, ledger)

    done = ledger.applied + ledger.lifecycle + ledger.refused + ledger.unknown
    lat = sorted(ledger.latencies)
    ms = lambda s: f"{s * 1000:.1f}ms"  # noqa: E731
    print(f"operations  {done} in {elapsed:.1f}s = {done / elapsed if elapsed else 0:.0f} ops/s"
          f"  (applied {ledger.applied}, lifecycle {ledger.lifecycle}, refused {ledger.refused}, unknown {ledger.unknown}, retries {ledger.retries})")
    print(f"latency     p50 {ms(percentile(lat, 50))}  p90 {ms(percentile(lat, 90))}"
          f"  p99 {ms(percentile(lat, 99))}  max {ms(lat[-1] if lat else 0)}")
    for err, n in sorted(ledger.errors.items()):
        print(f"unknown outcome: {n} x {err}")

    conn = Conn(a.url, a.timeout)

    def balance_of(wallet):
        status, _, body = conn.request("GET", f"/wallet/{wallet}/balance")
        return json.loads(body)["balance"] if status == 200 else f"HTTP {status}"

    mismatches = check_conservation(ledger.acked, balance_of, a.overdraft)
    conn.close()
    for wallet, got, want in mismatches:
        print(f"MISMATCH wallet {wallet}: balance {got}, acknowledged operations sum to {want}"
              f" (overdraft limit {a.overdraft})")
    if mismatches or ledger.unknown:
        print(f"conservation FAILED: {len(mismatches)} mismatched wallets, {ledger.unknown} operations with unknown outcome")
        return 1
    print(f"conservation OK: {len(wallets)} wallets, every balance equals its acknowledged operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())

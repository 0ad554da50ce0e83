"""curl, for people who drive Coffer by hand and for quick load.

One request, like curl:

    python3 -m utils.curl -s -X POST -H 'Content-Type: application/json' \\
        -d '{"amount": 500}' http://127.0.0.1:8080/wallet/<id>/credit

The same request in a loop, over keep-alive connections, printing requests/s
and status-code counts every second until Ctrl-C or --duration:

    python3 -m utils.curl --loop --workers 8 --duration 10 http://127.0.0.1:8080/wallet/<id>/balance
"""

import argparse
import collections
import os
import sys
import threading
import time

if not __package__:
    # Run as a file (python3 utils/curl.py) rather than as a module
    # (python3 -m utils.curl): the utils package is beside this file.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils._http import Conn


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python3 -m utils.curl",
        description="Send an HTTP request like curl, or the same request in a loop with live statistics.",
    )
    p.add_argument("url", help="the URL, e.g. http://127.0.0.1:8080/wallet/<id>/balance")
    p.add_argument("-X", "--request", dest="method", help="HTTP method (default GET, or POST with -d)")
    p.add_argument("-H", "--header", action="append", default=[], help="a header 'Name: value'; repeatable")
    p.add_argument("-d", "--data", help="request body (sent as given; Coffer reads it as JSON)")
    p.add_argument("-s", "--silent", action="store_true", help="no progress output (kept for curl habits)")
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    p.add_argument("--loop", action="store_true", help="repeat the request until Ctrl-C, --duration or --count")
    p.add_argument("--workers", type=int, default=1, help="concurrent connections in --loop (default 1)")
    p.add_argument("--period", type=float, default=0.0, help="seconds each worker waits between requests (default 0)")
    p.add_argument("--duration", type=float, help="stop the loop after this many seconds")
    p.add_argument("--count", type=int, help="stop the loop after this many requests in all")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one answer (default 30)")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error("--workers must be at least 1")
    if a.method is None:
        a.method = "POST" if a.data is not None else "GET"
    headers = {}
    for h in a.header:
        name, sep, value = h.partition(":")
        if not sep:
            p.error(f"header {h!r}: want 'Name: value'")
        headers[name.strip()] = value.strip()
    a.headers = headers
    return a


def split_url(url):
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path or "/"


def once(a):
    base, path = split_url(a.url)
    conn = Conn(base, a.timeout)
    try:
        status, headers, body = conn.request(a.method, path, a.data, a.headers)
    except OSError as e:
        print(f"curl: cannot reach {a.url}: {e}", file=sys.stderr)
        return 7
    finally:
        conn.close()
    if a.include:
        sys.stdout.write(f"HTTP/1.1 {status}\n")
        for k, v in headers.items():
            sys.stdout.write(f"{k}: {v}\n")
        sys.stdout.write("\n")
    sys.stdout.write(body.decode(errors="replace"))
    if body and not body.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0 if status < 400 else 22


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.total = collections.Counter()
        self.window = collections.Counter()
        self.sent = 0

    def add(self, key):
        with self.lock:
            self.total[key] += 1
            self.window[key] += 1

    def take(self):
        """Count one more request against --count and return how many have been taken."""
        with self.lock:
            self.sent += 1
            return self.sent

    def swap(self):
        with self.lock:
            w, self.window = self.window, collections.Counter()
            return w


def fmt(counts):
    return "  ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "-"


def loop(a):
    base, path = split_url(a.url)
    stop = threading.Event()
    c = Counter()

    def worker():
        conn = Conn(base, a.timeout)
        try:
            while not stop.is_set():
                if a.count is not None and c.take() > a.count:
                    return
                try:
                    status, _, _ = conn.request(a.method, path, a.data, a.headers)
                    c.add(status)
                except OSError as e:
                    c.add(type(e).__name__)
                    stop.wait(0.1)
                if a.period:
                    stop.wait(a.period)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    rc = 0
    try:
        tick = start
        while any(t.is_alive() for t in threads):
            if a.duration is not None and time.monotonic() - start >= a.duration:
                break
            time.sleep(0.05)
            now = time.monotonic()
            if now - tick >= 1.0:
                w = c.swap()
                print(f"{now - start:6.1f}s  {sum(w.values()) / (now - tick):8.0f} req/s  {fmt(w)}", flush=True)
                tick = now
    except KeyboardInterrupt:
        rc = 130
    stop.set()
    for t in threads:
        t.join(timeout=a.timeout)
    elapsed = time.monotonic() - start
    n = sum(c.total.values())
    print(f"total  {n} requests in {elapsed:.1f}s, {n / elapsed if elapsed else 0:.0f} req/s  {fmt(c.total)}", flush=True)
    return rc


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    return loop(a) if a.loop else once(a)


if __name__ == "__main__":
    sys.exit(main())

"""Shared pieces of the tools: one keep-alive connection per worker, and percentiles."""

import http.client
import math
import json
import urllib.parse


class Conn:
    """A keep-alive HTTP/1.1 connection to one base URL that reconnects when the server closes it."""

    def __init__(self, base, timeout=30.0):
        u = urllib.parse.urlsplit(base)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"{base}: want an http:// or https:// URL")
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.c = None

    def _connect(self):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        self.c = cls(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes). Raises OSError/HTTPException when the server cannot be reached."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            if self.c is None:
                self._connect()
            try:
                self.c.request(method, self.prefix + path, body=body, headers=hdrs)
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r.headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed while idle: one fresh try.
                self.close()
                if attempt == 2:
                    raise
            except Exception:
                self.close()
                raise

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def percentile(sorted_values, p):
    """The p-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]

"""Coffer's command-line tools: standard library only, so they run anywhere Python 3 does.

    python3 -m utils.curl --help       curl-like requests, or a keep-alive load loop
    python3 -m utils.loadtest --help   credit/debit load with a money-conservation check
"""

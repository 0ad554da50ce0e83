"""Unit tests of the tools' own logic (the live-stack tests are in services/e2e)."""

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import unittest

from utils._http import percentile
from utils.loadtest import Ledger, check_conservation, parse_args, settle_transfers


class Percentile(unittest.TestCase):
    def test_nearest_rank(self):
        v = list(range(1, 101))
        self.assertEqual(percentile(v, 50), 50)
        self.assertEqual(percentile(v, 99), 99)
        self.assertEqual(percentile(v, 100), 100)
        self.assertEqual(percentile([7], 99), 7)
        self.assertEqual(percentile([], 50), 0.0)


class Conservation(unittest.TestCase):
    def test_reports_every_mismatch(self):
        acked = {"a": 10, "b": -0, "c": 5}
        balances = {"a": 10, "b": 3, "c": "HTTP 503"}
        self.assertEqual(check_conservation(acked, balances.get), [("b", 3, 0), ("c", "HTTP 503", 5)])

    def test_all_equal(self):
        self.assertEqual(check_conservation({"a": 1}, {"a": 1}.get), [])

    def test_money_still_held(self):
        balances = {"a": (5, 0), "b": (5, 3)}
        self.assertEqual(check_conservation({"a": 5, "b": 5}, balances.get), [("b", "5 with 3 still held", 5)])

    def test_below_the_overdraft(self):
        balances = {"a": -5, "b": -11}
        self.assertEqual(check_conservation({"a": -5, "b": -11}, balances.get, 10), [("b", -11, -11)])
        self.assertEqual(check_conservation({"a": -5}, balances.get), [("a", -5, -5)])


class Orders(unittest.TestCase):
    def test_a_completed_order_moves_money_to_the_shop_and_units_to_sold(self):
        ledger = Ledger(["w"])
        ledger.items = {"i": {"price": 5, "stock": 10, "restocked": 0, "sold": 0}}
        view = {"status": "completed", "shop_wallet_id": "s", "total": 15, "lines": [{"item_id": "i", "quantity": 3}]}
        ledger.order("w", view)
        ledger.order("w", dict(view, status="failed"))
        self.assertEqual((ledger.acked["w"], ledger.paid, ledger.items["i"]["sold"], ledger.shop), (-15, 15, 3, "s"))
        self.assertEqual(ledger.orders, {"completed": 1, "failed": 1})

    def test_orders_alone_is_half(self):
        self.assertEqual(parse_args(["--orders"]).orders, 0.5)
        self.assertEqual(parse_args(["--orders", "0.2"]).orders, 0.2)
        for argv in (["--orders", "1.5"], ["--orders", "0.6", "--transfer-ratio", "0.6"], ["--orders", "--items", "0"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                parse_args(argv)


class Args(unittest.TestCase):
    def test_defaults_to_a_duration(self):
        self.assertEqual(parse_args([]).duration, 10.0)
        self.assertIsNone(parse_args(["--count", "5"]).duration)

    def test_rejects_bad_hold_ratio(self):
        for argv in (["--hold-ratio", "1.5"], ["--hold-ratio", "0.6", "--lifecycle-ratio", "0.6"], ["--hold-expires-in", "0"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                parse_args(argv)

    def test_rejects_bad_ratio(self):
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
            parse_args(["--debit-ratio", "1.5"])
        self.assertIn("--debit-ratio must be between 0 and 1", err.getvalue())

    def test_rejects_bad_lifecycle(self):
        for argv, want in ((["--lifecycle-ratio", "-0.1"], "--lifecycle-ratio must be between 0 and 1"),
                           (["--overdraft", "-1"], "--overdraft must be from 0 to 10^15")):
            with self.subTest(argv=argv), self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
                parse_args(argv)
            self.assertIn(want, err.getvalue())

    def test_rejects_bad_transfer_ratio(self):
        for argv in (["--transfer-ratio", "1.5"], ["--transfer-ratio", "0.6", "--hold-ratio", "0.5"],
                     ["--transfer-ratio", "0.5", "--wallets", "1"]):
            with self.subTest(argv=argv), self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                parse_args(argv)


class Transfers(unittest.TestCase):
    class Answers:
        """A connection that answers GET /transfers/{id} from a script."""

        def __init__(self, script):
            self.script = script

        def request(self, method, path, body=None, headers=None):
            state = self.script[path].pop(0)
            return 200, {}, ('{"status": "%s"}' % state).encode()

    def test_a_completed_transfer_moves_money_and_a_failed_one_none(self):
        ledger = Ledger(["a", "b"])
        ledger.transfer("a", "b", 5, "completed")
        ledger.transfer("b", "a", 7, "failed")
        self.assertEqual(ledger.acked, {"a": -5, "b": 5})
        self.assertEqual(ledger.transfers, {"completed": 1, "failed": 1, "pending": 0})

    def test_pending_ones_are_followed_to_their_end(self):
        ledger = Ledger(["a", "b"])
        ledger.pending = [("t1", "a", "b", 3), ("t2", "b", "a", 4)]
        conn = self.Answers({"/transfers/t1": ["pending", "completed"], "/transfers/t2": ["failed"]})
        _, stuck = settle_transfers(conn, ledger)
        self.assertEqual(stuck, 0)
        self.assertEqual(ledger.acked, {"a": -3, "b": 3})

    def test_one_that_never_ends_is_counted(self):
        ledger = Ledger(["a", "b"])
        ledger.pending = [("t1", "a", "b", 3)]
        conn = self.Answers({"/transfers/t1": ["pending"] * 100})
        _, stuck = settle_transfers(conn, ledger, within=0.3)
        self.assertEqual(stuck, 1)
        self.assertEqual(ledger.acked, {"a": 0, "b": 0})


if __name__ == "__main__":
    unittest.main()


class RunAsFile(unittest.TestCase):
    """Each tool runs as `python3 -m utils.<tool>` and as `python3 utils/<tool>.py`, from anywhere."""

    def test_help_both_ways(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for tool in ("curl", "loadtest"):
            for argv, cwd in (
                ([sys.executable, "-m", "utils." + tool, "--help"], root),
                ([sys.executable, os.path.join(root, "utils", tool + ".py"), "--help"], tempfile.gettempdir()),
            ):
                with self.subTest(tool=tool, argv=argv[1]):
                    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30,
                                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
                    self.assertEqual(out.returncode, 0, out.stderr)
                    self.assertIn("usage:", out.stdout)

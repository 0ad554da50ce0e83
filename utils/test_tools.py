"""Unit tests of the tools' own logic (the live-stack tests are in services/e2e)."""

import contextlib
import io
import unittest

from utils._http import percentile
from utils.loadtest import check_conservation, parse_args


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


class Args(unittest.TestCase):
    def test_defaults_to_a_duration(self):
        self.assertEqual(parse_args([]).duration, 10.0)
        self.assertIsNone(parse_args(["--count", "5"]).duration)

    def test_rejects_bad_ratio(self):
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
            parse_args(["--debit-ratio", "1.5"])
        self.assertIn("--debit-ratio must be between 0 and 1", err.getvalue())


if __name__ == "__main__":
    unittest.main()

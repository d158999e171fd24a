"""The Python skip rule: under CI=true a missing requirement fails the test, elsewhere it skips
with a `SKIPPED:` line. Run with `python3 -m unittest discover -s tests`."""

import io
import os
import sys
import unittest
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from require import requires  # noqa: E402


def probes():
    """Test cases to run by hand, built inside a function so that discovery does not collect them."""

    class Probe(unittest.TestCase):
        @requires(False, "needs a unicorn")
        def test_missing(self):
            raise AssertionError("the body must not run")

        @requires(True, "never printed")
        def test_present(self):
            pass

    @requires(False, "needs a unicorn for the whole class")
    class ProbeClass(unittest.TestCase):
        def test_one(self):
            raise AssertionError("the body must not run")

    return Probe, ProbeClass


def run(test: unittest.TestCase, ci: str):
    result = unittest.TestResult()
    err = io.StringIO()
    with mock.patch.dict(os.environ, {"CI": ci}), redirect_stderr(err):
        test.run(result)
    return result, err.getvalue()


class RequireRule(unittest.TestCase):
    def test_under_ci_a_missing_requirement_fails_with_the_reason(self):
        Probe, ProbeClass = probes()
        for test in (Probe("test_missing"), ProbeClass("test_one")):
            result, _ = run(test, "true")
            self.assertEqual((len(result.failures), len(result.skipped)), (1, 0), test)
            self.assertIn("cannot run its real part under CI=true: needs a unicorn", result.failures[0][1])

    def test_outside_ci_it_skips_with_a_skipped_line(self):
        Probe, _ = probes()
        result, err = run(Probe("test_missing"), "")
        self.assertEqual((len(result.failures), len(result.skipped)), (0, 1))
        self.assertIn("SKIPPED: " + Probe("test_missing").id() + ": needs a unicorn\n", err)
        # The line stands alone, so that a counter reading the log finds it at a line start.
        self.assertTrue(any(line.startswith("SKIPPED: ") for line in err.splitlines()))

    def test_a_met_requirement_runs_the_test(self):
        Probe, _ = probes()
        result, err = run(Probe("test_present"), "true")
        self.assertTrue(result.wasSuccessful())
        self.assertEqual((result.testsRun, len(result.skipped), err), (1, 0, ""))


if __name__ == "__main__":
    unittest.main()

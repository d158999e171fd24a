"""Python tests that cannot run their real part here (a tool or module missing) never pass silently.

Under CI=true such a test fails with the reason. Elsewhere it is skipped, visibly: it prints
`SKIPPED: <test>: <reason>` on a line of its own (stderr), which `scripts/test.sh` counts in its
closing summary. The Rust side's twin is `portico_testkit::require!`.

    sys.path.insert(0, str(REPO / "tests"))
    from require import requires

    @requires(shutil.which("nginx"), "needs nginx")
    def test_nginx_accepts_its_configuration(self): ...

`requires` decorates a test method or a whole TestCase class (each of its tests is checked).
"""

from __future__ import annotations

import functools
import os
import sys
import unittest


def in_ci() -> bool:
    """Whether this run is CI (CI=true or CI=1), where a missing requirement fails the test."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip(test: unittest.TestCase, reason: str) -> None:
    """Fail `test` under CI=true, else print the SKIPPED line and skip it. Never returns."""
    name = test.id()
    if in_ci():
        test.fail(f"{name}: cannot run its real part under CI=true: {reason}")
    print(f"\nSKIPPED: {name}: {reason}", file=sys.stderr, flush=True)
    raise unittest.SkipTest(reason)


def require(test: unittest.TestCase, ok: object, reason: str) -> None:
    """Go on when `ok` is truthy; otherwise `skip` (fail under CI=true)."""
    if not ok:
        skip(test, reason)


def requires(ok: object, reason: str):
    """Decorator form of `require` for a test method or a TestCase class."""

    def decorate(target):
        if isinstance(target, type) and issubclass(target, unittest.TestCase):
            set_up = target.setUp

            @functools.wraps(set_up)
            def checked_set_up(self, *args, **kwargs):
                require(self, ok, reason)
                return set_up(self, *args, **kwargs)

            target.setUp = checked_set_up
            return target

        @functools.wraps(target)
        def checked(self, *args, **kwargs):
            require(self, ok, reason)
            return target(self, *args, **kwargs)

        return checked

    return decorate

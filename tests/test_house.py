"""The house rules of ARCHITECTURE.md that a machine can check: no non-test Rust file over 500
lines, no function over 120 lines, no import circles between files (tests/rust_imports.py), no
package depending on a package with a binary.

Run: python3 -m unittest discover -s tests (part of scripts/test.sh)."""

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rust_imports  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 500
MAX_FN_LINES = 120
SOURCE_DIRS = ["crates", "gateway", "lb-controller", "proxy-agent", "hellok8s"]


FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def is_test_file(path: Path) -> bool:
    parts = path.parts
    return (
        "tests" in parts
        or path.name in ("tests.rs", "proptests.rs")
        or path.stem.endswith("_tests")
        or "testkit" in parts
        or "benches" in parts
    )


def source_files():
    for d in SOURCE_DIRS:
        for p in sorted((REPO / d).rglob("*.rs")):
            if "target" in p.relative_to(REPO).parts:
                continue
            yield p


def code_lines(text: str):
    """The file's lines up to its first `#[cfg(test)]` module (inline tests do not count)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod\s+\w+", lines[i + 1]):
            # `mod tests;` (a file of its own) is one line; `mod tests { ... }` ends the code.
            if lines[i + 1].rstrip().endswith("{"):
                return lines[:i]
    return lines


def long_functions(lines):
    """(name, first line, length) of every fn whose body spans more than MAX_FN_LINES lines."""
    out = []
    i = 0
    while i < len(lines):
        m = FN_RE.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j].split("//")[0])
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            for ch in code:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
            if not started and code.rstrip().endswith(";"):
                break  # a declaration without a body
            if started and depth <= 0:
                break
            j += 1
        length = j - i + 1
        if started and length > MAX_FN_LINES:
            out.append((m.group(6), i + 1, length))
        i += 1 if not started else 1
    return out


class HouseRules(unittest.TestCase):
    def test_no_long_files(self):
        long = {}
        for p in source_files():
            if is_test_file(p):
                continue
            n = len(code_lines(p.read_text()))
            if n > MAX_FILE_LINES:
                long[str(p.relative_to(REPO))] = n
        self.assertEqual(long, {}, f"non-test files over {MAX_FILE_LINES} lines")

    def test_no_long_functions(self):
        long = {}
        for p in source_files():
            if is_test_file(p):
                continue
            for name, line, n in long_functions(code_lines(p.read_text())):
                long[f"{p.relative_to(REPO)} fn {name}"] = f"line {line}: {n} lines"
        self.assertEqual(long, {}, f"functions over {MAX_FN_LINES} lines")

    def test_no_import_circles(self):
        """No file imports, directly or through others, from a file that imports from it."""
        found = set()
        roots = sorted(REPO.glob("crates/*/src/lib.rs")) + [
            REPO / d / "src" / f for d in ("gateway", "lb-controller", "proxy-agent", "hellok8s")
            for f in ("lib.rs", "main.rs") if (REPO / d / "src" / f).is_file()
        ]
        for root in roots:
            if "testkit" in root.parts:
                continue
            crate = rust_imports.Crate(root.parent.parent.name, root)
            for cycle in rust_imports.cycles(crate.edges()):
                found.add(tuple(str(p.relative_to(REPO)) for p in cycle))
        self.assertEqual(found, set(), "import circles")

    def test_the_circle_finder_sees_a_circle_and_not_a_parent(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            src = Path(d)
            (src / "lib.rs").write_text("mod a;\nmod b;\npub mod p;\npub use p::Q;\n")
            (src / "a.rs").write_text("use crate::b::{B, other};\npub struct A;\n")
            (src / "b.rs").write_text("use crate::a::A;\npub struct B;\npub fn other() {}\n")
            (src / "p.rs").write_text("mod c;\npub struct P;\npub use c::Q;\n")
            (src / "p").mkdir()
            (src / "p" / "c.rs").write_text("use super::P;\npub struct Q(P);\n")
            crate = rust_imports.Crate("t", src / "lib.rs")
            self.assertEqual(rust_imports.cycles(crate.edges()), [[src / "a.rs", src / "b.rs"]])

    def test_no_binary_depends_on_a_binary(self):
        """A shared engine lives in a library crate; a package with a binary is a leaf. The one
        exception is hellok8s, the tutorial's demo app: a library the gateway embeds (the
        `gateway hellok8s` subcommand and the quickstart's pods) with a one-line binary of its
        own that the load tests use as their origin."""
        meta = json.loads(
            subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
                cwd=REPO, check=True, capture_output=True, text=True,
            ).stdout
        )
        with_bins = {
            p["name"] for p in meta["packages"]
            if any("bin" in t["kind"] for t in p["targets"]) and p["name"] != "hellok8s"
        }
        bad = []
        for p in meta["packages"]:
            for d in p["dependencies"]:
                if d["name"] in with_bins:
                    bad.append(f"{p['name']} -> {d['name']}")
        self.assertEqual(bad, [], "a package depends on a package with a binary")

if __name__ == "__main__":
    unittest.main()

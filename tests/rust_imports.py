"""The import graph of the workspace's Rust files, file to file, for tests/test_house.py.

A file imports another when a `use` path (or a `crate::`/`super::`/`self::` path in code) names
an item that the other file defines. Re-exports (`pub use`) are followed to the defining file, and
neither a `mod x;` declaration nor a re-export is an import: a parent that declares its children
and re-exports their items does not thereby import them, and a child's use of its ancestors' items
is no edge either (see `Crate.edges`). Parsing is textual, which is enough for this code base's
style (no glob re-exports across files, no macros defining items)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ITEM_RE = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|const\s+|unsafe\s+)*"
    r"(?:fn|struct|enum|trait|type|const|static|union|mod|macro_rules!)\s+(\w+)"
)
USE_START_RE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+")
CODE_PATH_RE = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")


@dataclass
class Module:
    path: tuple[str, ...]  # module path inside the crate, () for the root
    file: Path
    items: set[str] = field(default_factory=set)
    submodules: set[str] = field(default_factory=set)
    # `pub use` re-exports: exported name -> the full path it points at
    reexports: dict[str, tuple[str, ...]] = field(default_factory=dict)
    uses: list[tuple[str, ...]] = field(default_factory=list)  # every imported path, resolved to absolute


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        out.append(line.split("//")[0])
    return "\n".join(out)


def non_test_part(text: str) -> str:
    """Drop inline `#[cfg(test)] mod x { ... }` blocks (tests may import anything)."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]" and i + 1 < len(lines):
            nxt = lines[i + 1]
            if re.match(r"\s*(pub\s+)?mod\s+\w+\s*\{", nxt):
                depth, j = 0, i + 1
                while j < len(lines):
                    depth += lines[j].count("{") - lines[j].count("}")
                    if depth <= 0 and "{" in "".join(lines[i + 1:j + 1]):
                        break
                    j += 1
                i = j + 1
                continue
            if re.match(r"\s*(pub\s+)?mod\s+\w+\s*;", nxt) or re.match(r"\s*(pub\s+)?use\s", nxt):
                i += 2
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def expand_use(tree: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::{d as e}, self}` -> [(['a','b'], None), (['a','c','d'], 'e'), (['a'], None)]."""
    tree = re.sub(r"\s+", "", tree)

    def parse(prefix: list[str], s: str) -> list[tuple[list[str], str | None]]:
        if "{" not in s:
            return [(prefix + (s.split("::") if s else []), None)]
        head, rest = s.split("{", 1)
        body = rest[:-1] if rest.endswith("}") else rest
        head_parts = [p for p in head.split("::") if p]
        items, depth, cur = [], 0, ""
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            items.append(cur)
        out = []
        for it in items:
            out.extend(parse(prefix + head_parts, it))
        return out

    return parse([], tree)


def use_statements(text: str) -> list[tuple[bool, str]]:
    """(is pub, the tree text) of every `use` statement, aliases removed."""
    out = []
    for m in re.finditer(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        tree = re.sub(r"\s+as\s+\w+", "", m.group(2))
        out.append((m.group(1) is not None, tree))
    return out


class Crate:
    def __init__(self, name: str, root_file: Path):
        self.name = name
        self.modules: dict[tuple[str, ...], Module] = {}
        self.load((), root_file)

    def load(self, path: tuple[str, ...], file: Path) -> None:
        text = non_test_part(strip_comments(file.read_text()))
        m = Module(path, file)
        self.modules[path] = m
        for line in text.split("\n"):
            im = ITEM_RE.match(line)
            if im:
                m.items.add(im.group(1))
        for sm in re.finditer(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            name = sm.group(1)
            child = self.child_file(file, path, name)
            if child is not None:
                m.submodules.add(name)
                self.load(path + (name,), child)
        for is_pub, tree in use_statements(text):
            for parts, _ in expand_use(tree):
                parts = [p for p in parts if p]
                if not parts or parts[-1] == "*":
                    continue
                if parts[-1] == "self":
                    parts = parts[:-1]
                absolute = self.absolute(path, parts)
                if absolute is None:
                    continue
                if is_pub:
                    # A re-export passes an item through; whoever imports it through this module
                    # is led to the defining file, so the re-export itself is no edge.
                    m.reexports[absolute[-1]] = absolute
                else:
                    m.uses.append(absolute)
        code = re.sub(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", "", text)
        for cm in CODE_PATH_RE.finditer(code):
            absolute = self.absolute(path, cm.group(1).split("::"))
            if absolute is not None:
                m.uses.append(absolute)

    @staticmethod
    def child_file(file: Path, path: tuple[str, ...], name: str) -> Path | None:
        base = file.parent if file.name in ("lib.rs", "main.rs", "mod.rs") else file.parent / file.stem
        for cand in (base / f"{name}.rs", base / name / "mod.rs"):
            if cand.is_file():
                return cand
        return None

    def absolute(self, here: tuple[str, ...], parts: list[str]) -> tuple[str, ...] | None:
        if parts[0] == "crate":
            return tuple(parts[1:])
        if parts[0] in ("self", "super"):
            cur = list(here)
            i = 0
            while i < len(parts) and parts[i] in ("self", "super"):
                if parts[i] == "super":
                    if not cur:
                        return None
                    cur.pop()
                i += 1
            return tuple(cur + parts[i:])
        # A path relative to this module: a child module's item (`use child::X`).
        mod = self.modules.get(here)
        if mod is not None and parts[0] in mod.submodules:
            return here + tuple(parts)
        return None  # an external crate or std

    def defining_file(self, path: tuple[str, ...], seen: int = 0) -> Path | None:
        """The file that defines the item (or module) at `path`, following re-exports."""
        if seen > 16:
            return None
        if path in self.modules:
            return self.modules[path].file
        if not path:
            return None
        parent, name = path[:-1], path[-1]
        # The longest existing module prefix, then the item inside it.
        while parent and parent not in self.modules:
            name = parent[-1]
            parent = parent[:-1]
        mod = self.modules.get(parent)
        if mod is None:
            return None
        if name in mod.items:
            return mod.file
        if name in mod.reexports and mod.reexports[name] != path:
            return self.defining_file(mod.reexports[name], seen + 1)
        return mod.file

    def edges(self) -> dict[Path, set[Path]]:
        """File -> the files it takes items from. A module using its ancestors' items is not an
        edge: a child is part of its parent (`super::Type` is the house's way to share a type
        with the submodules that implement it), so only the parent's use of the child counts."""
        by_file = {m.file: m.path for m in self.modules.values()}
        out: dict[Path, set[Path]] = {m.file: set() for m in self.modules.values()}
        for m in self.modules.values():
            for u in m.uses:
                f = self.defining_file(u)
                if f is None or f == m.file:
                    continue
                target = by_file[f]
                if m.path[: len(target)] == target:
                    continue  # an ancestor's item
                out[m.file].add(f)
        return out


def cycles(edges: dict[Path, set[Path]]) -> list[list[Path]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on: set[Path] = set()
    out: list[list[Path]] = []
    counter = [0]

    def visit(v: Path) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out

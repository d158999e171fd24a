"""Medians, the RESULTS.md document, the goals verdict, and the check that a table is well formed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

NOTES_MARKER = "<!-- Everything below this line is kept when the runner rewrites the file. -->"
NOT_AVAILABLE = "not available"


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mb: float
    hwm_mb: float
    cpu_us: float  # proxy CPU per request
    pss_mb: float = 0.0
    command: str = ""


@dataclass
class Cell:
    """One contender in one scenario: its runs, or why there are none."""

    samples: list[Sample] = field(default_factory=list)
    unavailable: str | None = None
    note: str = ""

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    @property
    def errors_total(self) -> int:
        return sum(s.errors for s in self.samples)


@dataclass
class Scenario:
    key: str
    title: str
    contenders: list[str]
    cells: dict[str, Cell] = field(default_factory=dict)
    # Contenders allowed to be "not available" without failing a smoke run (a feature of the
    # build under test that is not wired yet), with the reason shown in the table.
    may_be_unavailable: tuple[str, ...] = ()

    def cell(self, contender: str) -> Cell:
        return self.cells.setdefault(contender, Cell())


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def ratio(a: Cell | None, b: Cell | None) -> float | None:
    if a is None or b is None or not a.samples or not b.samples or b.median("rps") == 0:
        return None
    return a.median("rps") / b.median("rps")


HEADER = ("| scenario | contender | rps | p50 ms | p99 ms | errors (all runs) | RSS MB | peak RSS MB | PSS MB "
          "| CPU µs/req | rps vs nginx | rps vs HAProxy | runs |")
COLUMNS = HEADER.count("|") - 1


def table(scenarios: list[Scenario]) -> str:
    lines = [HEADER, "|" + "---|" * COLUMNS]
    for sc in scenarios:
        for name in sc.contenders:
            c = sc.cells.get(name)
            if c is None or not c.samples:
                why = (c.unavailable if c and c.unavailable else "no numbers")
                lines.append(f"| {sc.title} | {name} | {NOT_AVAILABLE}: {why} |" + " – |" * (COLUMNS - 3))
                continue
            vs = []
            for peer in ("nginx", "haproxy"):
                r = ratio(c, sc.cells.get(peer)) if name != peer else None
                vs.append(f"{r:.2f}×" if r is not None else "–")
            lines.append(
                f"| {sc.title} | {name} | {_fmt(c.median('rps'), 0)} | {c.median('p50_ms'):.2f} | {c.median('p99_ms'):.2f} "
                f"| {c.errors_total} | {c.median('rss_mb'):.1f} | {c.median('hwm_mb'):.1f} | {c.median('pss_mb'):.1f} "
                f"| {c.median('cpu_us'):.1f} "
                f"| {vs[0]} | {vs[1]} | {len(c.samples)} |"
            )
    return "\n".join(lines)


def parse_table(md: str) -> dict[tuple[str, str], list[str]]:
    """Rows of the results table by (scenario, contender): the cells after those two."""
    rows: dict[tuple[str, str], list[str]] = {}
    inside = False
    for line in md.splitlines():
        if line.strip() == HEADER:
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def _number(cell: str) -> float | None:
    try:
        return float(cell.replace(",", "").rstrip("×"))
    except ValueError:
        return None


def validate(md: str, scenarios: list[Scenario]) -> list[str]:
    """Problems with the table in `md`: every expected row present, with numbers in every numeric
    column, and rps > 0 — unless the contender is allowed to be unavailable in that scenario."""
    problems = []
    rows = parse_table(md)
    if not rows:
        return ["no results table found"]
    for sc in scenarios:
        for name in sc.contenders:
            cells = rows.get((sc.title, name))
            if cells is None:
                problems.append(f"{sc.title} / {name}: row missing")
                continue
            if cells[0].startswith(NOT_AVAILABLE):
                if name not in sc.may_be_unavailable:
                    problems.append(f"{sc.title} / {name}: {cells[0]}")
                continue
            if len(cells) != COLUMNS - 2:
                problems.append(f"{sc.title} / {name}: {len(cells)} cells, expected {COLUMNS - 2}")
                continue
            numeric = cells[:8]
            if any(_number(c) is None for c in numeric):
                problems.append(f"{sc.title} / {name}: non-numeric cell in {numeric}")
            elif (_number(numeric[0]) or 0) <= 0:
                problems.append(f"{sc.title} / {name}: zero requests per second")
    return problems


@dataclass
class Goal:
    text: str
    met: bool | None  # None: could not be measured
    evidence: str


def goals(by_key: dict[str, Scenario], propagation: dict[int, dict[str, list[float | None]]]) -> list[Goal]:
    out = []

    def cell(key: str, name: str) -> Cell | None:
        sc = by_key.get(key)
        c = sc.cells.get(name) if sc else None
        return c if c and c.samples else None

    p, n, h = cell("ka64", "portico"), cell("ka64", "nginx"), cell("ka64", "haproxy")
    if p and n and h:
        rn, rh = p.median("rps") / n.median("rps"), p.median("rps") / h.median("rps")
        out.append(Goal("L7 keepalive (64 conns) rps ≥ 1.2× nginx", rn >= 1.2, f"{rn:.2f}×"))
        out.append(Goal("L7 keepalive (64 conns) rps ≥ 1.0× HAProxy", rh >= 1.0, f"{rh:.2f}×"))
        out.append(Goal("L7 keepalive (64 conns) p99 ≤ nginx's", p.median("p99_ms") <= n.median("p99_ms"),
                        f"{p.median('p99_ms'):.2f} ms vs {n.median('p99_ms'):.2f} ms"))
    else:
        out.append(Goal("L7 keepalive goals", None, "a contender has no numbers"))
    p, n = cell("https", "portico"), cell("https", "nginx")
    out.append(Goal("HTTPS keepalive rps ≥ nginx", p.median("rps") >= n.median("rps"),
                    f"{p.median('rps') / n.median('rps'):.2f}×") if p and n else Goal("HTTPS rps ≥ nginx", None, "no numbers"))
    p = cell("hosts10k", "portico")
    out.append(Goal("RSS < 60 MB with 10,000 Ingress routes", p.median("rss_mb") < 60,
                    f"{p.median('rss_mb'):.1f} MB (peak {p.median('hwm_mb'):.1f} MB)") if p
               else Goal("RSS < 60 MB with 10,000 Ingress routes", None, "no numbers"))
    measured = propagation.get(10000, {}).get("portico", [])
    times = [t for t in measured if t is not None]
    misses = len(measured) - len(times)
    if not measured:
        out.append(Goal("route propagation < 50 ms at 10,000 Ingresses", None, "no numbers"))
    elif not misses:
        m = statistics.median(times) * 1000
        out.append(Goal("route propagation < 50 ms at 10,000 Ingresses", m < 50, f"{m:.1f} ms (median)"))
    else:
        out.append(Goal("route propagation < 50 ms at 10,000 Ingresses", False,
                        f"{misses} of {len(measured)} changes were never routed within the timeout"))
    p = cell("churn", "portico")
    out.append(Goal("zero errors under churn", p.errors_total == 0, f"{p.errors_total} errors") if p
               else Goal("zero errors under churn", None, "no numbers"))
    p, h = cell("l4", "portico"), cell("l4", "haproxy")
    out.append(Goal("L4 rps ≥ HAProxy tcp mode", p.median("rps") >= h.median("rps"),
                    f"{p.median('rps') / h.median('rps'):.2f}×") if p and h
               else Goal("L4 rps ≥ HAProxy tcp mode", None, "Portico's LoadBalancer listener had no numbers"))
    return out


def goals_md(gs: list[Goal]) -> str:
    lines = ["| goal | met | measured |", "|---|---|---|"]
    for g in gs:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[g.met]
        lines.append(f"| {g.text} | {verdict} | {g.evidence} |")
    return "\n".join(lines)


def propagation_md(prop: dict[int, dict[str, list[float | None]]], contenders: list[str]) -> str:
    lines = ["| Ingresses | " + " | ".join(f"{c} ms (median; runs)" for c in contenders) + " |",
             "|---|" + "---|" * len(contenders)]
    for n in sorted(prop):
        cells = []
        for c in contenders:
            ts = prop[n].get(c)
            if not ts:
                cells.append(NOT_AVAILABLE)
                continue
            ok = [t * 1000 for t in ts if t is not None]
            shown = ", ".join("timeout" if t is None else f"{t * 1000:.1f}" for t in ts)
            med = f"{statistics.median(ok):.1f}" if len(ok) == len(ts) else "timeout"
            cells.append(f"{med} ({shown})")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

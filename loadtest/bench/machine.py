"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    out = (p.stdout or p.stderr).strip().splitlines()
    return out[0] if out else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def describe(repo: Path) -> list[str]:
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "gateway", "crates", "hellok8s"],
                           capture_output=True, text=True).stdout.strip()
    return [
        f"- CPUs: {os.cpu_count()} × {cpu_model()} (`nproc`: {len(os.sched_getaffinity(0))})",
        f"- kernel: {platform.release()}",
        f"- load average at start (1/5/15 min): {loadavg()}",
        f"- Portico: commit {commit}{' with uncommitted changes in the working tree' if dirty else ''}, release build",
        f"- nginx: {_first_line(['nginx', '-v'])}",
        f"- HAProxy: {_first_line(['haproxy', '-v'])}",
        f"- wrk: {_first_line(['wrk', '-v'])}",
    ]

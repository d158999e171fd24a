"""Run wrk pinned to the load generator's CPU and read the line report.lua prints."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_CPUS = "1"
WRK_DIR = Path(__file__).resolve().parent.parent / "wrk"


class WrkError(RuntimeError):
    pass


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # connect + read + write + timeout + non-2xx/3xx
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    command: str

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def parse(output: str, command: str) -> WrkResult:
    """The PORTICO_WRK line of wrk's output (see wrk/report.lua)."""
    for line in output.splitlines():
        if line.startswith("PORTICO_WRK "):
            try:
                d = json.loads(line[len("PORTICO_WRK "):])
                socket = d["connect"] + d["read"] + d["write"] + d["timeout"]
                return WrkResult(
                    requests=d["requests"], duration_s=d["duration_us"] / 1e6, errors=socket + d["status"],
                    status_errors=d["status"], socket_errors=socket,
                    p50_ms=d["p50_us"] / 1000, p99_ms=d["p99_us"] / 1000, command=command,
                )
            except (ValueError, KeyError) as e:
                raise WrkError(f"malformed report line {line!r}: {e}") from e
    raise WrkError(f"wrk printed no report line; output:\n{output[-2000:]}")


def command(url: str, script: str, conns: int, duration: float, env: dict[str, str]) -> list[str]:
    return ["taskset", "-c", WRK_CPUS, "wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--timeout", "2s",
            "-s", str(WRK_DIR / script), url]


def shown(argv: list[str], env: dict[str, str]) -> str:
    """The command as a user would type it from the repository root."""
    root = WRK_DIR.parent.parent
    parts = [f"{k}={shlex.quote(v)}" for k, v in env.items() if k != "PORTICO_WRK_DIR" and v]
    parts += [shlex.quote(a.replace(str(root) + "/", "")) for a in argv]
    return " ".join(parts)


def run(url: str, script: str, conns: int, duration: float, env: dict[str, str] | None = None) -> WrkResult:
    env = {"PORTICO_WRK_DIR": str(WRK_DIR), **(env or {})}
    argv = command(url, script, conns, duration, env)
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=duration + 60)
    if p.returncode != 0:
        raise WrkError(f"wrk exited with {p.returncode}: {p.stderr.strip() or p.stdout[-500:]}")
    return parse(p.stdout, shown(argv, env))

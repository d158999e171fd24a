"""Processes the runner starts: pinned with taskset, logged to files, measured from /proc, and
stopped by their own PID only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A contender or origin did not come up; the message names it and points at its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now on `host` (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        f = _stat_fields(int(entry.name))
        if f is not None and int(f[1]) == pid:
            out.append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        if _stat_fields(p) is None:
            continue
        found.append(p)
        todo.extend(children(p))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of the process tree: user + system of every live process, plus what exited (and
    was reaped) children used, so worker processes replaced by a reload still count."""
    total = 0
    for p in tree(pid):
        f = _stat_fields(p)
        if f is None:
            continue
        # Fields after the comm: state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14.
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Memory:
    rss_kb: int  # sum of VmRSS over the live tree
    hwm_kb: int  # sum of VmHWM (peak RSS) over the live tree
    pss_kb: int  # sum of Pss: pages shared between a master and its workers counted once


def memory(pid: int) -> Memory:
    pids = tree(pid)
    return Memory(sum(_status_kb(p, "VmRSS") for p in pids), sum(_status_kb(p, "VmHWM") for p in pids),
                  sum(_pss_kb(p) for p in pids))


class Proc:
    """One started process (its PID is the command's: taskset execs it)."""

    def __init__(self, name: str, argv: list[str], log: Path, cpus: str | None, env: dict | None = None):
        self.name = name
        self.log = log
        full = (["taskset", "-c", cpus] if cpus is not None else []) + argv
        self.argv = full
        self._logf = open(log, "wb")
        self.popen = subprocess.Popen(
            full,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise StartError(f"{self.name} exited with status {self.popen.returncode}; log {self.log}:\n{self.tail()}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to this PID and the children it left behind (by PID)."""
        if self.alive():
            kids = tree(self.pid)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for p in kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.popen.wait(timeout)
            # Workers that outlive their master (they should not) are ended by PID.
            for p in kids[1:]:
                if _stat_fields(p) is not None:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self._logf.close()


def http_status(host: str, port: int, host_header: str, path: str = "/", timeout: float = 1.0) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a new connection; (status, body prefix). (0, b"") when nothing answered."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while len(buf) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if b"\r\n\r\n" in buf and len(buf) > 512:
                    break
    except OSError:
        return 0, b""
    head, _, body = buf.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, b""
    return int(parts[1]), body


def wait_until(what: str, cond, timeout: float, procs: list[Proc]) -> None:
    """Poll `cond()` until true; fail early if one of `procs` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            p.check_alive()
        if cond():
            return
        time.sleep(0.02)
    raise StartError(f"timed out after {timeout:.0f}s waiting for {what}")

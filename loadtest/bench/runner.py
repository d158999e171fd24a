"""The benchmark: origins, then for each group of scenarios a fresh set of contenders with the
same routes, every scenario run `runs` times alternating the contenders' order, measured from
wrk's report and the proxy's /proc entries."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import configs
from .configs import HELLO, STATIC, SUFFIX, Cert, Site
from .contenders import Contender, HAProxy, Nginx, Portico, PorticoBefore, PorticoHyper, poll_until_routed, start_all
from .procs import Proc, StartError, cpu_seconds, free_port, http_status, memory, wait_until
from .report import Cell, Sample, Scenario
from . import wrk

ORIGIN_CPUS = "0"
PROXIES = ["portico", "nginx", "haproxy"]


@dataclass
class Options:
    duration: float
    runs: int
    bin_dir: Path
    tmp: Path
    only: set[str] | None
    log: callable = print
    perf: set[str] = field(default_factory=set)  # scenarios to profile Portico in (one extra run)
    baseline: Path | None = None  # another build's bin dir: a `portico-before` contender in the base scenarios


@dataclass
class Load:
    """One wrk scenario: script, connections, which host and path, plain or TLS."""

    script: str
    conns: int
    host: str
    path: str = "/"
    https: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {"HOST": self.host, "URL_PATH": self.path, **self.extra_env}


@dataclass
class Origins:
    hello: tuple[str, int]
    static: tuple[str, int]
    procs: list[Proc]

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def start_origins(opts: Options) -> Origins:
    """hellok8s (a one-thread hyper server) for small bodies; nginx serving 1 KiB and 64 KiB
    files for the body-size scenarios. Both pinned to the proxy's CPU, like the measurements in
    PERF-NOTES: the load generator keeps a core to itself."""
    hello = ("127.0.0.1", free_port())
    static = ("127.0.0.1", free_port())
    d = opts.tmp / "origins"
    (d / "www").mkdir(parents=True, exist_ok=True)
    (d / "www" / "1k").write_bytes(bytes(random.Random(1).getrandbits(8) for _ in range(1024)))
    (d / "www" / "64k").write_bytes(bytes(random.Random(64).getrandbits(8) for _ in range(64 * 1024)))
    (d / "origin-nginx.conf").write_text(configs.nginx_origin_conf(d, d / "www", static[1]))
    procs = [
        Proc("origin hellok8s", [str(opts.bin_dir / "hellok8s"), "--listen", f"{hello[0]}:{hello[1]}", "--name", "origin-1"],
             d / "hellok8s.log", ORIGIN_CPUS),
        Proc("origin nginx", ["nginx", "-p", str(d), "-e", str(d / "origin-nginx-error.log"), "-c", str(d / "origin-nginx.conf")],
             d / "origin-nginx.out", ORIGIN_CPUS),
    ]
    origins = Origins(hello, static, procs)
    try:
        wait_until("the hellok8s origin", lambda: http_status(*hello, "origin")[0] == 200, 20, procs)
        wait_until("the nginx origin", lambda: http_status(*static, "origin", "/1k")[0] == 200, 20, procs)
    except StartError:
        origins.stop()
        raise
    return origins


def measure(pid: int, url: str, load: Load, duration: float) -> Sample:
    cpu0 = cpu_seconds(pid)
    r = wrk.run(url, load.script, load.conns, duration, load.env())
    cpu1 = cpu_seconds(pid)
    mem = memory(pid)
    return Sample(rps=r.rps, p50_ms=r.p50_ms, p99_ms=r.p99_ms, errors=r.errors, rss_mb=mem.rss_kb / 1024,
                  hwm_mb=mem.hwm_kb / 1024, pss_mb=mem.pss_kb / 1024, cpu_us=(cpu1 - cpu0) * 1e6 / max(r.requests, 1), command=r.command)


def profile(pid: int, url: str, load: Load, duration: float, out: Path) -> str:
    """One extra run with `perf record` attached to the proxy; the flat profile by symbol."""
    rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-p", str(pid), "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wrk.run(url, load.script, load.conns, duration, load.env())
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(30)

    def report(sort: str, limit: str, top: int) -> list[str]:
        rep = subprocess.run(["perf", "report", "--stdio", "--no-children", "-g", "none", "--sort", sort,
                              "--percent-limit", limit, "-i", str(out)], capture_output=True, text=True)
        rows = [" ".join(line.split()).rstrip(" -") for line in rep.stdout.splitlines()
                if line.strip() and not line.startswith("#")]
        return rows[:top] or [rep.stderr.strip()[:300]]

    return "\n".join(["by shared object:", *report("dso", "0.5", 10), "", "by symbol (self):",
                      *report("dso,symbol", "0.7", 35)])


def direct(url: str, load: Load, duration: float) -> float:
    """Requests per second straight to the origin (no proxy): the headroom check."""
    return wrk.run(url, load.script, load.conns, duration, load.env()).rps


class Runner:
    def __init__(self, opts: Options, cert: Cert, origins: Origins):
        self.opts = opts
        self.cert = cert
        self.origins = origins
        self.scenarios: list[Scenario] = []
        self.failures: list[str] = []
        self.headroom: list[tuple[str, float, float]] = []  # (scenario, direct rps, best proxy rps)
        self.propagation: dict[int, dict[str, list[float | None]]] = {}
        self.profiles: dict[str, str] = {}  # scenario title -> perf report of Portico

    def wanted(self, key: str) -> bool:
        return self.opts.only is None or key in self.opts.only

    def base_site(self) -> Site:
        return Site(upstreams={"hello": self.origins.hello, "static": self.origins.static},
                    hosts=[(HELLO, "hello"), (STATIC, "static")], tls_hosts={HELLO})

    def run_group(self, tag: str, specs: list[tuple[str, str, Load, str | None]], make: list[Contender],
                  site_for, probe: str, url_for=None, may_be_unavailable: tuple[str, ...] = (),
                  during=None) -> None:
        """Start `make` with `site_for()`, run every (key, title, load, origin url) spec `runs`
        times alternating the contenders, stop them."""
        specs = [s for s in specs if self.wanted(s[0])]
        if not specs:
            return
        names = [c.name for c in make]
        scenarios = [Scenario(key, title, names, may_be_unavailable=may_be_unavailable) for key, title, _, _ in specs]
        self.scenarios.extend(scenarios)
        self.opts.log(f"[{tag}] starting {', '.join(names)}")
        running = list(make)
        for f in start_all(running, site_for, probe, self.opts.bin_dir):
            self.opts.log(f"[{tag}] failed to start: {f}")
            name = f.split(":", 1)[0]
            for sc in scenarios:
                sc.cell(name).unavailable = f"did not start or route ({f.split(':', 1)[1].strip().splitlines()[0]})"
            if name not in may_be_unavailable:
                self.failures.append(f"[{tag}] {f}")
        try:
            for (key, title, load, origin_url), sc in zip(specs, scenarios):
                for r in range(self.opts.runs):
                    order = running[r % len(running):] + running[: r % len(running)] if running else []
                    for c in order:
                        url = url_for(c, load) if url_for else (c.https_url() if load.https else c.http_url())
                        stop = threading.Event()
                        helper = threading.Thread(target=during, args=(c, stop), daemon=True) if during else None
                        if helper:
                            helper.start()
                        try:
                            s = measure(c.pid, url, load, self.opts.duration)
                        except wrk.WrkError as e:
                            sc.cell(c.name).unavailable = str(e).splitlines()[0]
                            self.failures.append(f"{title} / {c.name}: {e}")
                            continue
                        finally:
                            if helper:
                                stop.set()
                                helper.join()
                        if s.rps == 0:
                            self.failures.append(f"{title} / {c.name}: no requests completed")
                        sc.cell(c.name).samples.append(s)
                        self.opts.log(f"[{tag}] {title} run {r + 1} {c.name}: {s.rps:,.0f} rps, p99 {s.p99_ms:.2f} ms, "
                                      f"{s.errors} errors, {s.cpu_us:.1f} µs/req, RSS {s.rss_mb:.1f} MB")
                        if c.proc is not None and not c.proc.alive():
                            self.failures.append(f"{title} / {c.name}: exited during the run")
                portico = next((c for c in running if c.name == "portico"), None)
                if key in self.opts.perf and portico is not None:
                    url = url_for(portico, load) if url_for else (portico.https_url() if load.https else portico.http_url())
                    self.profiles[title] = profile(portico.pid, url, load, self.opts.duration, self.opts.tmp / f"perf-{key}.data")
                    self.opts.log(f"[{tag}] {title}: profiled Portico in one extra run (not counted)")
                if origin_url:
                    d = direct(origin_url, load, self.opts.duration)
                    best = max((cell.median("rps") for cell in sc.cells.values() if cell.samples), default=0.0)
                    self.headroom.append((title, d, best))
                    self.opts.log(f"[{tag}] {title} direct to the origin: {d:,.0f} rps (best proxy {best:,.0f})")
        finally:
            for c in running:
                c.stop()

    def http_groups(self) -> None:
        o, tmp, cert = self.origins, self.opts.tmp, self.cert
        hello_url = f"http://{o.hello[0]}:{o.hello[1]}/"
        static_url = f"http://{o.static[0]}:{o.static[1]}/"
        base = [
            ("ka64", "keepalive, 64 conns", Load("keepalive.lua", 64, HELLO), hello_url),
            ("ka256", "keepalive, 256 conns", Load("keepalive.lua", 256, HELLO), hello_url),
            ("https", "HTTPS keepalive, 64 conns", Load("keepalive.lua", 64, HELLO, https=True), None),
            ("close", "new connection per request, 64 conns", Load("close.lua", 64, HELLO), hello_url),
            ("body1k", "1 KiB body, 64 conns", Load("body.lua", 64, STATIC, "/1k"), static_url + "1k"),
            ("body64k", "64 KiB body, 64 conns", Load("body.lua", 64, STATIC, "/64k"), static_url + "64k"),
        ]
        contenders = [Portico(tmp, cert, "base"), Nginx(tmp, cert, "base"), HAProxy(tmp, cert, "base"),
                      PorticoHyper(tmp, cert, "base")]
        if self.opts.baseline is not None:
            contenders.append(PorticoBefore(tmp, cert, "base", self.opts.baseline))
        self.run_group("base", base, contenders, self.base_site, HELLO)

        def hosts_site() -> Site:
            return Site(upstreams={"hello": o.hello}, hosts=configs.many_hosts(10000))

        load = Load("hosts.lua", 64, "", extra_env={"HOSTS": "10000", "SUFFIX": SUFFIX})
        hosts_contenders: list[Contender] = [Portico(tmp, cert, "hosts"), Nginx(tmp, cert, "hosts"),
                                             HAProxy(tmp, cert, "hosts")]
        if self.opts.baseline is not None:
            hosts_contenders.append(PorticoBefore(tmp, cert, "hosts", self.opts.baseline))
        self.run_group("hosts", [("hosts10k", "10,000 Ingress hosts, 64 conns", load, None)],
                       hosts_contenders, hosts_site, f"h9999.{SUFFIX}")

        def churn_site() -> Site:
            s = self.base_site()
            s.churn_generation = 0
            return s

        def churn(c: Contender, stop: threading.Event) -> None:
            """Edit the Ingress under load every 100 ms until the run ends."""
            gen = (c.site.churn_generation or 0) if c.site else 0
            s: Site | None = None
            while not stop.wait(0.1):
                gen += 1
                s = churn_site()
                s.churn_generation = gen
                c.apply(s)
            # The last edit must have taken effect, or the churn proved nothing.
            host = f"gen{gen}.{configs.CHURN}"
            if poll_until_routed("127.0.0.1", c.http_port, host, 5.0) is None:
                if c.name != "portico" and s is not None:
                    # A peer's reload signal can land while its previous reload is still in
                    # progress and be lost; that is the harness's doing, not a routing result.
                    # Apply the final configuration once more before judging. Portico is judged
                    # on the first try.
                    c.apply(s)
                    if poll_until_routed("127.0.0.1", c.http_port, host, 5.0) is not None:
                        return
                self.failures.append(f"churn / {c.name}: the last edit ({host}) was never routed")

        self.run_group("churn", [("churn", "churn: an Ingress edited every 100 ms, 64 conns",
                                  Load("keepalive.lua", 64, HELLO), None)],
                       [Portico(tmp, cert, "churn"), Nginx(tmp, cert, "churn"), HAProxy(tmp, cert, "churn")],
                       churn_site, HELLO, during=churn)

    def l4_group(self) -> None:
        if not self.wanted("l4"):
            return
        o, tmp, cert = self.origins, self.opts.tmp, self.cert
        pool_ip = f"127.0.{random.randint(100, 250)}.{random.randint(1, 250)}"
        lb_port = free_port(pool_ip)
        portico = Portico(tmp, cert, "l4", l4=(pool_ip, lb_port, o.hello))
        haproxy = HAProxy(tmp, cert, "l4", tcp_origin=o.hello)

        def url_for(c: Contender, load: Load) -> str:
            if isinstance(c, Portico):
                return f"http://{pool_ip}:{lb_port}/"
            assert haproxy.tcp is not None
            return f"http://127.0.0.1:{haproxy.tcp[0]}/"

        def site() -> Site:
            return Site(upstreams={"hello": o.hello}, hosts=[(HELLO, "hello")])

        spec = [("l4", "L4 TCP keepalive, 64 conns", Load("keepalive.lua", 64, HELLO), None)]
        self.run_group("l4", spec, [portico, haproxy], site, HELLO, url_for=url_for, may_be_unavailable=("portico",))

    def propagation_group(self, sizes: list[int], reps: int) -> None:
        if not self.wanted("propagation"):
            return
        o, tmp, cert = self.origins, self.opts.tmp, self.cert
        for n in sizes:
            self.propagation[n] = {}
            contenders: list[Contender] = [cls(tmp, cert, f"prop{n}") for cls in (Portico, Nginx, HAProxy)]
            if self.opts.baseline is not None:
                contenders.append(PorticoBefore(tmp, cert, f"prop{n}", self.opts.baseline))
            for c in contenders:
                site = Site(upstreams={"hello": o.hello}, hosts=configs.many_hosts(n))
                self.opts.log(f"[propagation] {n} Ingresses: starting {c.name}")
                try:
                    c.start(site, f"h{n - 1}.{SUFFIX}", self.opts.bin_dir)
                except (StartError, OSError) as e:
                    self.failures.append(f"propagation {n} / {c.name}: {e}")
                    c.stop()
                    continue
                times: list[float | None] = []
                try:
                    for rep in range(reps):
                        host = f"new{rep}.{SUFFIX}"
                        site = Site(upstreams=site.upstreams, hosts=[*site.hosts, (host, "hello")])
                        c.apply(site)
                        t = poll_until_routed("127.0.0.1", c.http_port, host, 30.0)
                        times.append(t)
                        self.opts.log(f"[propagation] {n} Ingresses, {c.name}: "
                                      + ("timeout" if t is None else f"{t * 1000:.1f} ms"))
                        time.sleep(0.3)
                finally:
                    c.stop()
                self.propagation[n][c.name] = times
                if any(t is None for t in times):
                    self.failures.append(f"propagation {n} / {c.name}: a new host was never routed")

"""The proxies under test, behind one small interface: start with a `Site`, answer on loopback
ports of their own, apply a configuration change the way their users do (Portico: a manifest
file; nginx and HAProxy: rewrite the configuration and signal a reload), stop by PID."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from . import configs
from .configs import Cert, Site
from .procs import Proc, StartError, free_port, http_status, wait_until

PROXY_CPUS = "0"


class Contender:
    name = "?"

    def __init__(self, tmp: Path, cert: Cert, tag: str):
        self.dir = tmp / f"{self.name}-{tag}"
        self.cert = cert
        self.http_port = free_port()
        self.https_port = free_port()
        self.proc: Proc | None = None
        self.site: Site | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "started before measured"
        return self.proc.pid

    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/"

    def routes(self, host: str) -> bool:
        return http_status("127.0.0.1", self.http_port, host)[0] == 200

    def wait_routes(self, host: str, timeout: float = 60.0) -> None:
        assert self.proc is not None
        wait_until(f"{self.name} to route {host} (log {self.proc.log})", lambda: self.routes(host), timeout, [self.proc])

    def start(self, site: Site, probe_host: str, bin_dir: Path) -> None:
        raise NotImplementedError

    def apply(self, site: Site) -> None:
        """Make `site` the configuration being served."""
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class Portico(Contender):
    name = "portico"
    extra_args: list[str] = []

    def __init__(self, tmp: Path, cert: Cert, tag: str, l4: tuple[str, int, tuple[str, int]] | None = None):
        super().__init__(tmp, cert, tag)
        self.admin_port = free_port()
        self.manifests = self.dir / "manifests"
        self.l4 = l4

    def start(self, site: Site, probe_host: str, bin_dir: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.site = site
        configs.write_manifests(self.manifests, site, self.cert)
        if self.l4 is not None:
            configs.write_atomic(self.manifests / "l4.yaml", configs.l4_docs(*self.l4))
        argv = [
            str(bin_dir / "gateway"),
            "--manifests", str(self.manifests),
            "--http-addr", f"127.0.0.1:{self.http_port}",
            "--https-addr", f"127.0.0.1:{self.https_port}",
            "--admin-addr", f"127.0.0.1:{self.admin_port}",
            "--state-dir", str(self.dir / "state"),
            "--no-service-proxy",
            *self.extra_args,
        ]
        # One worker thread, as nginx and HAProxy get one worker / one thread.
        env = {"TOKIO_WORKER_THREADS": "1", "RUST_LOG": "warn"}
        self.proc = Proc(self.name, argv, self.dir / "gateway.log", PROXY_CPUS, env)
        wait_until(f"portico /readyz (log {self.proc.log})",
                   lambda: http_status("127.0.0.1", self.admin_port, f"127.0.0.1:{self.admin_port}", "/readyz")[0] == 200, 60, [self.proc])
        self.wait_routes(probe_host)
        if self.l4 is not None:
            ip, port, _ = self.l4
            wait_until(f"a LoadBalancer listener on {ip}:{port} (log {self.proc.log})",
                       lambda: http_status(ip, port, probe_host)[0] == 200, 15, [self.proc])

    def apply(self, site: Site) -> None:
        old = self.site
        self.site = site
        if old is not None and site.churn_generation != old.churn_generation and site.churn_generation is not None:
            configs.write_atomic(self.manifests / "churn.yaml", configs.churn_doc(site.churn_generation))
        if old is not None:
            before = set(old.hosts)
            for host, upstream in site.hosts:
                if (host, upstream) not in before:
                    configs.write_atomic(self.manifests / f"added-{host}.yaml",
                                         configs.ingress_doc(host, upstream, host in site.tls_hosts))


class PorticoHyper(Portico):
    """Portico with its HTTP/1.1 fast path off (`--http1-engine hyper`): every request through
    hyper's server and pooled client, as before the fast path. Run beside Portico so that each
    results table measures what the fast path is worth."""
    name = "portico-hyper"
    extra_args = ["--http1-engine", "hyper"]


class PorticoBefore(Portico):
    """Portico from another build (`--baseline-bin-dir`), for a change on a hot path: the build
    before the change and the build after it measured as two contenders of one run."""
    name = "portico-before"

    def __init__(self, tmp: Path, cert: Cert, tag: str, bin_dir: Path, l4=None):
        super().__init__(tmp, cert, tag, l4)
        self.baseline_dir = bin_dir

    def start(self, site: Site, probe_host: str, bin_dir: Path) -> None:
        super().start(site, probe_host, self.baseline_dir)


class Nginx(Contender):
    name = "nginx"

    def start(self, site: Site, probe_host: str, bin_dir: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.site = site
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(configs.nginx_conf(self.dir, site, self.cert, self.http_port, self.https_port))
        argv = ["nginx", "-p", str(self.dir), "-e", str(self.dir / "nginx-error.log"), "-c", str(self.conf)]
        self.proc = Proc(self.name, argv, self.dir / "nginx.out", PROXY_CPUS)
        self.wait_routes(probe_host)

    def apply(self, site: Site) -> None:
        assert self.proc is not None
        self.site = site
        configs.write_atomic(self.conf, configs.nginx_conf(self.dir, site, self.cert, self.http_port, self.https_port))
        self.proc.signal(signal.SIGHUP)


class HAProxy(Contender):
    name = "haproxy"

    def __init__(self, tmp: Path, cert: Cert, tag: str, tcp_origin: tuple[str, int] | None = None):
        super().__init__(tmp, cert, tag)
        self.tcp = (free_port(), tcp_origin) if tcp_origin is not None else None

    def _write(self) -> None:
        assert self.site is not None
        configs.write_atomic(self.conf, configs.haproxy_conf(self.dir, self.site, self.cert, self.http_port,
                                                             self.https_port, self.tcp))

    def start(self, site: Site, probe_host: str, bin_dir: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.site = site
        self.conf = self.dir / "haproxy.cfg"
        self._write()
        # Master-worker (-W), in the foreground (-db): reloads are SIGUSR2 to the master.
        argv = ["haproxy", "-W", "-db", "-f", str(self.conf)]
        self.proc = Proc(self.name, argv, self.dir / "haproxy.out", PROXY_CPUS)
        self.wait_routes(probe_host)
        # The worker serves before the master has set up its signal handling; a reload signal
        # sent in between is lost. The master logs "Loading success." once it is in its loop.
        log = self.proc.log
        wait_until(f"the HAProxy master to finish starting (log {log})",
                   lambda: "Loading success." in log.read_text(errors="replace"), 20, [self.proc])
        time.sleep(0.1)

    def apply(self, site: Site) -> None:
        assert self.proc is not None
        self.site = site
        self._write()
        self.proc.signal(signal.SIGUSR2)


def start_all(contenders: list[Contender], site_for, probe_host: str, bin_dir: Path) -> list[str]:
    """Start each contender; returns the failures (a contender that failed is stopped and left out)."""
    failures = []
    for c in list(contenders):
        try:
            c.start(site_for(), probe_host, bin_dir)
        except (StartError, OSError) as e:
            failures.append(f"{c.name}: {e}")
            c.stop()
            contenders.remove(c)
    return failures


def poll_until_routed(host: str, port: int, host_header: str, timeout: float) -> float | None:
    """Seconds until the first 200 for `host_header`, polling new connections in a tight loop."""
    t0 = time.perf_counter()
    while True:
        if http_status(host, port, host_header, timeout=0.5)[0] == 200:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            return None

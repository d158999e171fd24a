"""Equivalent configurations for every contender, generated from one description of the routes.

The same `Site` becomes Portico manifests (selector-less Services + Endpoints, Ingresses, a TLS
Secret), an nginx configuration and an HAProxy configuration: same hosts, same upstreams, upstream
keepalive, one worker / one thread, no access logs, the same forwarding headers."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = "bench"
HELLO = f"hello.{SUFFIX}"
STATIC = f"static.{SUFFIX}"
CHURN = f"churn.{SUFFIX}"


@dataclass
class Site:
    """Routes shared by all contenders."""

    upstreams: dict[str, tuple[str, int]]  # upstream (Service) name -> origin address
    hosts: list[tuple[str, str]]  # (host, upstream), each one Ingress
    tls_hosts: set[str] = field(default_factory=set)  # hosts also served over HTTPS
    churn_generation: int | None = None  # if set: the churn Ingress's current generation

    def upstream_of(self, host: str) -> str:
        for h, u in self.hosts:
            if h == host:
                return u
        raise KeyError(host)


def many_hosts(n: int) -> list[tuple[str, str]]:
    return [(f"h{i}.{SUFFIX}", "hello") for i in range(n)]


@dataclass
class Cert:
    cert: Path
    key: Path
    pem: Path  # cert + key, as HAProxy wants it


def make_cert(dir: Path) -> Cert:
    """An ECDSA P-256 self-signed certificate for *.bench (openssl, no network)."""
    cert, key, pem = dir / "tls.crt", dir / "tls.key", dir / "tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={HELLO}",
         "-addext", f"subjectAltName=DNS:{HELLO},DNS:*.{SUFFIX},DNS:localhost"],
        check=True, capture_output=True,
    )
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return Cert(cert, key, pem)


# ---------------------------------------------------------------------------------------------
# Portico: manifests

def _dns_name(host: str) -> str:
    return host.replace(".", "-")


def service_docs(site: Site) -> str:
    docs = []
    for name, (ip, port) in site.upstreams.items():
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  ports:
    - name: http
      port: 80
      targetPort: {port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
subsets:
  - addresses:
      - ip: {ip}
    ports:
      - name: http
        port: {port}
""")
    return "---\n".join(docs)


def secret_doc(cert: Cert) -> str:
    crt = base64.b64encode(cert.cert.read_bytes()).decode()
    key = base64.b64encode(cert.key.read_bytes()).decode()
    return f"""apiVersion: v1
kind: Secret
metadata:
  name: bench-tls
type: kubernetes.io/tls
data:
  tls.crt: {crt}
  tls.key: {key}
"""


def ingress_doc(host: str, upstream: str, tls: bool, name: str | None = None, extra_hosts: tuple[str, ...] = ()) -> str:
    rules = "".join(f"""    - host: {h}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {upstream}
                port:
                  number: 80
""" for h in (host, *extra_hosts))
    tls_block = f"""  tls:
    - hosts: [{host}]
      secretName: bench-tls
""" if tls else ""
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name or _dns_name(host)}
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: "false"
spec:
  ingressClassName: portico
{tls_block}  rules:
{rules}"""


def churn_doc(generation: int) -> str:
    """The Ingress the churn scenario rewrites: serves hello.bench (the host under load) and one
    extra host that changes every generation, so every rewrite changes the route table."""
    return ingress_doc(HELLO, "hello", tls=False, name="churn", extra_hosts=(f"gen{generation}.{CHURN}",))


def write_atomic(path: Path, text: str) -> None:
    """Write beside `path` under a hidden name (sources skip hidden files), then rename in place."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_manifests(dir: Path, site: Site, cert: Cert, chunk: int = 1000) -> None:
    dir.mkdir(parents=True, exist_ok=True)
    write_atomic(dir / "services.yaml", service_docs(site))
    write_atomic(dir / "secret.yaml", secret_doc(cert))
    hosts = [(h, u) for h, u in site.hosts if not (site.churn_generation is not None and h == HELLO)]
    for i in range(0, len(hosts), chunk):
        docs = [ingress_doc(h, u, h in site.tls_hosts) for h, u in hosts[i : i + chunk]]
        write_atomic(dir / f"ingresses-{i // chunk:04}.yaml", "---\n".join(docs))
    if site.churn_generation is not None:
        write_atomic(dir / "churn.yaml", churn_doc(site.churn_generation))


def l4_docs(pool_ip: str, port: int, origin: tuple[str, int]) -> str:
    """An address pool of one loopback address and a LoadBalancer Service on it, in front of
    `origin` (selector-less, with its Endpoints)."""
    oip, oport = origin
    return f"""apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bench
  namespace: metallb-system
spec:
  addresses:
    - {pool_ip}/32
---
apiVersion: v1
kind: Service
metadata:
  name: hello-lb
spec:
  type: LoadBalancer
  ports:
    - name: tcp
      port: {port}
      targetPort: {oport}
      protocol: TCP
---
apiVersion: v1
kind: Endpoints
metadata:
  name: hello-lb
subsets:
  - addresses:
      - ip: {oip}
    ports:
      - name: tcp
        port: {oport}
"""


# ---------------------------------------------------------------------------------------------
# nginx

def _nginx_common(tmp: Path) -> str:
    t = tmp / "nginx-tmp"
    t.mkdir(exist_ok=True)
    return f"""daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log error;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
"""


def _nginx_temp_paths(tmp: Path) -> str:
    t = tmp / "nginx-tmp"
    return "".join(f"  {k}_temp_path {t}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def nginx_conf(tmp: Path, site: Site, cert: Cert, http_port: int, https_port: int) -> str:
    upstreams = "".join(f"""  upstream {name} {{
    server {ip}:{port};
    keepalive 512;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
  }}
""" for name, (ip, port) in site.upstreams.items())

    def server(host: str, upstream: str) -> str:
        ssl = (f"    listen 127.0.0.1:{https_port} ssl;\n    ssl_certificate {cert.cert};\n"
               f"    ssl_certificate_key {cert.key};\n") if host in site.tls_hosts else ""
        return f"""  server {{
    listen 127.0.0.1:{http_port};
{ssl}    server_name {host};
    location / {{ proxy_pass http://{upstream}; }}
  }}
"""

    hosts = [(h, u) for h, u in site.hosts if not (site.churn_generation is not None and h == HELLO)]
    servers = "".join(server(h, u) for h, u in hosts)
    if site.churn_generation is not None:
        servers += server(HELLO, "hello").replace(
            f"server_name {HELLO};", f"server_name {HELLO} gen{site.churn_generation}.{CHURN};")
    return _nginx_common(tmp) + f"""http {{
  access_log off;
{_nginx_temp_paths(tmp)}  keepalive_requests 1000000;
  keepalive_timeout 75s;
  server_names_hash_max_size 65536;
  server_names_hash_bucket_size 128;
  ssl_protocols TLSv1.2 TLSv1.3;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $host;
  proxy_set_header X-Real-IP $remote_addr;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto $scheme;
{upstreams}  server {{
    listen 127.0.0.1:{http_port} default_server;
    listen 127.0.0.1:{https_port} ssl default_server;
    ssl_certificate {cert.cert};
    ssl_certificate_key {cert.key};
    return 404;
  }}
{servers}}}
"""


def nginx_origin_conf(tmp: Path, root: Path, port: int) -> str:
    """nginx as the *origin* of the body-size scenarios: static files, keepalive, no logs."""
    return _nginx_common(tmp).replace("nginx.pid", "origin-nginx.pid").replace("nginx-error", "origin-nginx-error") + f"""http {{
  access_log off;
{_nginx_temp_paths(tmp)}  keepalive_requests 1000000;
  keepalive_timeout 75s;
  open_file_cache max=16;
  sendfile on;
  tcp_nopush off;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    default_type application/octet-stream;
  }}
}}
"""


# ---------------------------------------------------------------------------------------------
# HAProxy

def haproxy_conf(tmp: Path, site: Site, cert: Cert, http_port: int, https_port: int,
                 tcp: tuple[int, tuple[str, int]] | None = None) -> str:
    """Host routing through a map file (the idiomatic form at 10,000 hosts, and just as fast at 2)."""
    hosts = [(h, u) for h, u in site.hosts if not (site.churn_generation is not None and h == HELLO)]
    if site.churn_generation is not None:
        hosts += [(HELLO, "hello"), (f"gen{site.churn_generation}.{CHURN}", "hello")]
    (tmp / "haproxy-hosts.map").write_text("".join(f"{h} {u}\n" for h, u in hosts))
    backends = "".join(f"""backend {name}
  server origin {ip}:{port}
""" for name, (ip, port) in site.upstreams.items())
    listen_tcp = ""
    if tcp is not None:
        port, (oip, oport) = tcp
        listen_tcp = f"""listen l4
  mode tcp
  bind 127.0.0.1:{port}
  server origin {oip}:{oport}
"""
    return f"""global
  nbthread 1
  maxconn 4096
  pidfile {tmp}/haproxy.pid

defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 75s
  timeout http-keep-alive 75s
  option http-keep-alive
  http-reuse always
  option forwardfor

frontend web
  bind 127.0.0.1:{http_port}
  bind 127.0.0.1:{https_port} ssl crt {cert.pem} alpn http/1.1
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
  http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
  use_backend %[req.hdr(host),field(1,:),lower,map_str({tmp}/haproxy-hosts.map,notfound)]

backend notfound
  http-request return status 404

{backends}{listen_tcp}"""

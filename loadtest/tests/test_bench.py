"""Tests of the runner's pure parts and generated configurations (nginx -t, haproxy -c): run with
`python3 -m unittest discover -s loadtest/tests` from the repository root."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from bench import configs, report, wrk  # noqa: E402
from bench.report import Cell, Sample, Scenario  # noqa: E402
from require import requires  # noqa: E402

LINE = ('PORTICO_WRK {"requests":1000,"duration_us":2000000,"bytes":5,"connect":1,"read":2,"write":0,'
        '"status":3,"timeout":4,"p50_us":1500,"p90_us":2000,"p99_us":2900,"max_us":9000}')


def sample(rps: float, errors: int = 0) -> Sample:
    return Sample(rps=rps, p50_ms=1.0, p99_ms=2.0, errors=errors, rss_mb=10, hwm_mb=12, cpu_us=17.0)


class WrkParse(unittest.TestCase):
    def test_report_line_becomes_numbers(self):
        r = wrk.parse("Running 2s test\n" + LINE + "\n", "wrk ...")
        self.assertEqual(r.rps, 500.0)
        self.assertEqual(r.errors, 10)
        self.assertEqual((r.socket_errors, r.status_errors), (7, 3))
        self.assertEqual((r.p50_ms, r.p99_ms), (1.5, 2.9))

    def test_missing_line_is_an_error(self):
        with self.assertRaises(wrk.WrkError):
            wrk.parse("unable to connect to 127.0.0.1:1 Connection refused", "wrk ...")

    def test_malformed_line_is_an_error(self):
        with self.assertRaises(wrk.WrkError):
            wrk.parse('PORTICO_WRK {"requests": 1}', "wrk ...")


class Table(unittest.TestCase):
    def scenarios(self) -> list[Scenario]:
        sc = Scenario("ka64", "keepalive, 64 conns", ["portico", "nginx", "haproxy"])
        for name, rps in (("portico", [50_000, 40_000, 45_000]), ("nginx", [40_000] * 3), ("haproxy", [38_000] * 3)):
            sc.cell(name).samples = [sample(r) for r in rps]
        l4 = Scenario("l4", "L4", ["portico", "haproxy"], may_be_unavailable=("portico",))
        l4.cell("portico").unavailable = "listener not wired"
        l4.cell("haproxy").samples = [sample(60_000)]
        return [sc, l4]

    def test_medians_and_ratios_are_in_the_table(self):
        md = report.table(self.scenarios())
        rows = report.parse_table(md)
        self.assertEqual(rows[("keepalive, 64 conns", "portico")][0], "45,000")
        self.assertEqual(rows[("keepalive, 64 conns", "portico")][8], "1.12×")
        self.assertEqual(rows[("keepalive, 64 conns", "portico")][9], "1.18×")
        self.assertTrue(rows[("L4", "portico")][0].startswith("not available"))
        self.assertEqual(report.validate(md, self.scenarios()), [])

    def test_unavailable_contender_fails_unless_allowed(self):
        scs = self.scenarios()
        scs[0].cells["nginx"] = Cell(unavailable="did not start")
        problems = report.validate(report.table(scs), scs)
        self.assertEqual(len(problems), 1)
        self.assertIn("nginx", problems[0])

    def test_missing_row_and_zero_rps_are_reported(self):
        scs = self.scenarios()
        md = report.table(scs).replace("| keepalive, 64 conns | haproxy |", "| other | haproxy |")
        md = md.replace("| 45,000 |", "| 0 |")
        problems = report.validate(md, scs)
        self.assertTrue(any("haproxy: row missing" in p for p in problems), problems)
        self.assertTrue(any("zero requests" in p for p in problems), problems)

    def test_goals_say_what_was_not_met(self):
        by_key = {s.key: s for s in self.scenarios()}
        gs = {g.text: g for g in report.goals(by_key, {10000: {"portico": [0.020, 0.030, None]}})}
        self.assertFalse(gs["L7 keepalive (64 conns) rps ≥ 1.2× nginx"].met)
        self.assertTrue(gs["L7 keepalive (64 conns) rps ≥ 1.0× HAProxy"].met)
        self.assertFalse(gs["route propagation < 50 ms at 10,000 Ingresses"].met)
        self.assertIsNone(gs["L4 rps ≥ HAProxy tcp mode"].met)


class GeneratedConfigs(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="portico-loadtest-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cert = configs.make_cert(self.tmp)
        self.site = configs.Site(upstreams={"hello": ("127.0.0.1", 3000), "static": ("127.0.0.1", 3001)},
                                 hosts=[(configs.HELLO, "hello"), (configs.STATIC, "static")] + configs.many_hosts(50),
                                 tls_hosts={configs.HELLO}, churn_generation=3)

    @requires(shutil.which("nginx"), "needs nginx (apt-get install nginx)")
    def test_nginx_accepts_its_configuration(self):
        conf = self.tmp / "nginx.conf"
        conf.write_text(configs.nginx_conf(self.tmp, self.site, self.cert, 18080, 18443))
        p = subprocess.run(["nginx", "-t", "-p", str(self.tmp), "-e", str(self.tmp / "e.log"), "-c", str(conf)],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("server_name hello.bench gen3.churn.bench;", conf.read_text())

    @requires(shutil.which("haproxy"), "needs haproxy (apt-get install haproxy)")
    def test_haproxy_accepts_its_configuration(self):
        conf = self.tmp / "haproxy.cfg"
        conf.write_text(configs.haproxy_conf(self.tmp, self.site, self.cert, 18080, 18443, (18081, ("127.0.0.1", 3000))))
        p = subprocess.run(["haproxy", "-c", "-f", str(conf)], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        hosts = (self.tmp / "haproxy-hosts.map").read_text().splitlines()
        self.assertIn("gen3.churn.bench hello", hosts)
        self.assertEqual(len(hosts), 2 + 50 + 1)  # hello.bench moves to the churn entries

    def test_manifests_hold_every_route_once(self):
        d = self.tmp / "manifests"
        configs.write_manifests(d, self.site, self.cert, chunk=20)
        ingresses = "".join(p.read_text() for p in sorted(d.glob("ingresses-*.yaml")))
        self.assertEqual(ingresses.count("kind: Ingress"), 2 + 50 - 1)  # hello.bench lives in churn.yaml
        self.assertIn("gen3.churn.bench", (d / "churn.yaml").read_text())
        self.assertIn("type: kubernetes.io/tls", (d / "secret.yaml").read_text())
        self.assertFalse(any(p.name.startswith(".") for p in d.iterdir()), "temporary files left behind")


if __name__ == "__main__":
    unittest.main()

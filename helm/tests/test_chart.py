"""Render the chart with Helm's own engine (helm-python-sdk) and check what it produces."""

import os
import sys
import unittest

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from require import requires  # noqa: E402

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - reported by `requires`
    helm = None

CHART = os.path.join(os.path.dirname(__file__), "..", "portico")


def docs(rendered):
    out = []
    for path, text in rendered.items():
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((path, doc))
    return out


@requires(helm is not None, "needs helm-python-sdk (python3 -m pip install helm-python-sdk)")
class ChartTest(unittest.TestCase):
    def render(self, values=None):
        chart = helm.Chart.load(CHART)
        return docs(chart.render(values or {}, name="portico", namespace="portico-system", is_install=True))

    def kinds(self, rendered):
        return sorted(f"{d['kind']}/{d['metadata']['name']}" for _, d in rendered)

    def test_default_install(self):
        rendered = self.render()
        self.assertEqual(
            self.kinds(rendered),
            [
                "ClusterRole/portico",
                "ClusterRoleBinding/portico",
                "Deployment/portico-gateway",
                "Deployment/portico-lb-controller",
                "IngressClass/portico",
                "ServiceAccount/portico",
            ],
        )
        gw = next(d for _, d in rendered if d["metadata"]["name"] == "portico-gateway")
        args = gw["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertIn("--ingress-class=portico", args)
        self.assertIn("--no-service-proxy", args)
        ic = next(d for _, d in rendered if d["kind"] == "IngressClass")
        self.assertEqual(ic["spec"]["controller"], "portico.dev/ingress-controller")
        self.assertNotIn("annotations", ic["metadata"])

    def test_options(self):
        rendered = self.render(
            {
                "ingressClass": {"default": True},
                "proxyAgent": {"enabled": True},
                "gateway": {"publishService": "portico-system/edge"},
                "lbController": {"loadBalancerClass": "portico.dev/lb"},
            }
        )
        kinds = self.kinds(rendered)
        self.assertIn("DaemonSet/portico-proxy-agent", kinds)
        ic = next(d for _, d in rendered if d["kind"] == "IngressClass")
        self.assertEqual(ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"], "true")
        gw = next(d for _, d in rendered if d["metadata"]["name"] == "portico-gateway")
        self.assertIn("--publish-service=portico-system/edge", gw["spec"]["template"]["spec"]["containers"][0]["args"])
        lb = next(d for _, d in rendered if d["metadata"]["name"] == "portico-lb-controller")
        self.assertIn("--lb-class=portico.dev/lb", lb["spec"]["template"]["spec"]["containers"][0]["args"])

    def test_crds_ship_with_the_chart(self):
        chart = helm.Chart.load(CHART)
        names = sorted(os.path.basename(c["name"]) for c in chart.crds)
        self.assertEqual(names, ["metallb.io_ipaddresspools.yaml", "metallb.io_l2advertisements.yaml"])

    def test_lint_is_clean(self):
        report = helm.lint(CHART, strict=True)
        errors = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        self.assertEqual(errors, [], report)


if __name__ == "__main__":
    unittest.main()

"""Render the chart with Helm's own engine (helm-python-sdk) and check what it produces."""

import json
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
# The code's own list of every component's API access (portico_cluster::rbac; a Rust test keeps
# this file equal to it, and `lb-controller rbac` prints it).
RBAC = os.path.join(CHART, "files", "rbac.json")
ALL_ON = {"proxyAgent": {"enabled": True}, "gateway": {"allocate": True}}


def pods(rendered):
    """(component, pod spec) of every workload."""
    out = []
    for _, d in rendered:
        if d["kind"] in ("Deployment", "DaemonSet"):
            spec = d["spec"]["template"]["spec"]
            out.append((d["metadata"]["labels"]["app.kubernetes.io/component"], spec))
    return out


def expected_rules(role, lease):
    """A role of rbac.json as the chart must render it."""
    rules = []
    for r in role["rules"]:
        rule = {"apiGroups": r["apiGroups"], "resources": r["resources"], "verbs": r["verbs"]}
        if r.get("onlyTheLease"):
            rule["resourceNames"] = [lease]
        rules.append(rule)
    return rules


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
                "ClusterRole/portico-allocator",
                "ClusterRole/portico-gateway",
                "ClusterRoleBinding/portico-gateway",
                "ClusterRoleBinding/portico-lb-controller-allocator",
                "Deployment/portico-gateway",
                "Deployment/portico-lb-controller",
                "IngressClass/portico",
                "Role/portico-allocator-lease",
                "RoleBinding/portico-lb-controller-allocator-lease",
                "ServiceAccount/portico-gateway",
                "ServiceAccount/portico-lb-controller",
            ],
        )
        gw = next(d for _, d in rendered if d["metadata"]["name"] == "portico-gateway")
        args = gw["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertIn("--ingress-class=portico", args)
        self.assertIn("--no-service-proxy", args)
        self.assertNotIn("--allocate", args)
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

    def by_kind(self, rendered, kind):
        return {d["metadata"]["name"]: d for _, d in rendered if d["kind"] == kind}

    def granted(self, rendered, sa):
        """Every (role kind, rules, binding namespace) bound to ServiceAccount `sa`."""
        roles = {**self.by_kind(rendered, "ClusterRole"), **self.by_kind(rendered, "Role")}
        out = []
        for _, b in rendered:
            if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
                continue
            if not any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in b["subjects"]):
                continue
            role = roles[b["roleRef"]["name"]]
            self.assertEqual(role["kind"], b["roleRef"]["kind"], b["metadata"]["name"])
            out.append((b["kind"], role["rules"], b["metadata"].get("namespace")))
        return out

    def test_one_service_account_per_component(self):
        rendered = self.render(ALL_ON)
        accounts = {spec["serviceAccountName"] for _, spec in pods(rendered)}
        self.assertEqual(accounts, {"portico-gateway", "portico-lb-controller", "portico-proxy-agent"})
        self.assertEqual(sorted(self.by_kind(rendered, "ServiceAccount")), sorted(accounts))
        for component, spec in pods(rendered):
            self.assertEqual(spec["serviceAccountName"], f"portico-{component}")

    def test_rules_are_the_code_list(self):
        with open(RBAC) as f:
            code = json.load(f)
        roles = {r["name"]: r for r in code["roles"]}
        lease = "portico-lb-controller"
        for values, gateway_entry in ((ALL_ON, "gateway-allocate"), ({"proxyAgent": {"enabled": True}}, "gateway")):
            rendered = self.render(values)
            for sa, entry in (
                ("portico-gateway", gateway_entry),
                ("portico-lb-controller", "lb-controller"),
                ("portico-proxy-agent", "proxy-agent"),
            ):
                want = sorted(
                    (
                        "ClusterRoleBinding" if roles[n]["scope"] == "Cluster" else "RoleBinding",
                        json.dumps(expected_rules(roles[n], lease), sort_keys=True),
                    )
                    for n in code["components"][entry]
                )
                have = sorted((k, json.dumps(rules, sort_keys=True)) for k, rules, _ in self.granted(rendered, sa))
                self.assertEqual(have, want, sa)
        # The Lease the rules name is the one the allocating components elect on.
        rendered = self.render(ALL_ON)
        for _, spec in pods(rendered):
            args = spec["containers"][0]["args"]
            if "--allocate" in args or spec["serviceAccountName"] == "portico-lb-controller":
                self.assertIn(f"--lease-name={lease}", args)

    def test_no_cluster_wide_lease_write_and_secrets_only_for_the_gateway(self):
        rendered = self.render(ALL_ON)
        for name, role in self.by_kind(rendered, "ClusterRole").items():
            for rule in role["rules"]:
                self.assertNotIn("coordination.k8s.io", rule["apiGroups"], name)
                self.assertNotIn("*", rule["verbs"] + rule["resources"] + rule["apiGroups"], name)
        for name, role in self.by_kind(rendered, "Role").items():
            self.assertEqual(role["metadata"]["namespace"], "portico-system")
            for rule in role["rules"]:
                if rule["verbs"] != ["create"]:
                    self.assertEqual(rule.get("resourceNames"), ["portico-lb-controller"], name)
        for b in self.by_kind(rendered, "RoleBinding").values():
            self.assertEqual(b["metadata"]["namespace"], "portico-system")
        for sa in ("portico-gateway", "portico-lb-controller", "portico-proxy-agent"):
            resources = {
                (g, r) for _, rules, _ in self.granted(rendered, sa) for rule in rules
                for g in rule["apiGroups"] for r in rule["resources"]
            }
            self.assertEqual(("", "secrets") in resources, sa == "portico-gateway", sa)
            self.assertEqual(("", "services/status") in resources, sa != "portico-proxy-agent", sa)
            self.assertNotIn(("", "pods"), resources, sa)
            self.assertNotIn(("", "endpoints"), resources, sa)
        # Without --allocate, the gateway writes no Service and no Lease.
        rendered = self.render()
        gw = {(g, r) for _, rules, _ in self.granted(rendered, "portico-gateway") for rule in rules
              for g in rule["apiGroups"] for r in rule["resources"]}
        self.assertNotIn(("", "services/status"), gw)
        self.assertNotIn(("coordination.k8s.io", "leases"), gw)

    def test_pods_are_hardened_and_know_themselves(self):
        rendered = self.render(ALL_ON)
        self.assertEqual(len(pods(rendered)), 3)
        for component, spec in pods(rendered):
            self.assertEqual(spec["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"}, component)
            for c in spec["containers"]:
                env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
                self.assertEqual(env.get("POD_NAME"), "metadata.name", component)
                self.assertEqual(env.get("POD_NAMESPACE"), "metadata.namespace", component)
                self.assertFalse(c["securityContext"].get("allowPrivilegeEscalation", True), component)
                self.assertIn("ALL", c["securityContext"]["capabilities"]["drop"], component)

    def admin(self, values):
        gw = next(spec for c, spec in pods(self.render(values)) if c == "gateway")
        c = gw["containers"][0]
        addr = next(a for a in c["args"] if a.startswith("--admin-addr="))
        return addr, c["readinessProbe"]["httpGet"].get("host"), c["livenessProbe"]["httpGet"].get("host")

    def test_admin_api_is_not_on_every_address(self):
        # hostNetwork (the default): loopback, and the probes ask there.
        self.assertEqual(self.admin({}), ("--admin-addr=127.0.0.1:9901", "127.0.0.1", "127.0.0.1"))
        # Opted in: the Pod IP (the node's address).
        self.assertEqual(self.admin({"gateway": {"adminOnPodIP": True}}), ("--admin-addr=$(POD_IP):9901", None, None))
        # A Pod network: the Pod IP.
        self.assertEqual(self.admin({"gateway": {"hostNetwork": False}}), ("--admin-addr=$(POD_IP):9901", None, None))
        for _, spec in pods(self.render(ALL_ON)):
            for c in spec["containers"]:
                for a in c["args"]:
                    if a.startswith("--admin-addr="):
                        self.assertNotIn("0.0.0.0", a)
        gw = next(spec for c, spec in pods(self.render(ALL_ON)) if c == "gateway")
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in gw["containers"][0]["env"]}
        self.assertEqual(env["POD_IP"], "status.podIP")

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

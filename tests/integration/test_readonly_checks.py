"""The read-only checks pass on healthy production-like objects and name the broken one otherwise.

The local cluster has no second DNS server, no Cilium and one node, so the production-like
objects are seeded with the admin identity in a namespace of this test: a DNS Deployment and
Service, a kube-proxy DaemonSet, and Cilium's DaemonSet, operator, CRDs and objects. A profile
copied from `local` then claims them, and the suites run read-only as the reader identity, as
they would against production. Everything seeded is removed in `finally`.

The judge of a read-only run is the API server's audit log (tests/cluster_audit.py); the last
test here proves that the judge sees the reader open a stream into a pod, which the log
records as a `get`.
"""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.stream import portforward, stream

from cluster_audit import audit_since, not_read_only
from conformance import manifests, run as runs, waiting
from conformance.cluster import paths
from tests.integration.core_runs import run_suites
from tinysuite import derived_profile

PAUSE = "registry.k8s.io/pause:3.10.1"
NOWHERE = {"platform-conformance.io/no-such-node": "true"}  # a nodeSelector no node matches
CILIUM_CRDS = ("ciliumnodes", "CiliumNode", "Cluster"), ("ciliumendpoints", "CiliumEndpoint", "Namespaced")
SEEDED_S = 120.0


def _pod_template(app: str, node_selector: dict | None = None) -> dict:
    spec = {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": PAUSE, "imagePullPolicy": "IfNotPresent", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def _deployment(name: str, replicas: int = 1, node_selector: dict | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": _pod_template(name, node_selector)}}


def _daemonset(name: str, node_selector: dict | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "labels": {"k8s-app": name}},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": _pod_template(name, node_selector)}}


def _crd(plural: str, kind: str, scope: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cilium.io"},
            "spec": {"group": "cilium.io", "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                     "versions": [{"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


@pytest.fixture
def seeded(admin_api):
    """A namespace of production-like objects, and the names in it; removed afterwards."""
    core, apps = k8s.CoreV1Api(admin_api), k8s.AppsV1Api(admin_api)
    ext, custom = k8s.ApiextensionsV1Api(admin_api), k8s.CustomObjectsApi(admin_api)
    ns = f"pcf-seed-{uuid.uuid4().hex[:6]}"
    existing_crds = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    made_crds = [f"{p}.cilium.io" for p, _, _ in CILIUM_CRDS if f"{p}.cilium.io" not in existing_crds]
    core.create_namespace({"metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "platform-conformance"}}})
    try:
        docs = [_deployment("coredns"), _deployment("coredns-broken", node_selector=NOWHERE),
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "coredns"}, "spec": {
                    "selector": {"app": "coredns"},
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
                _daemonset("cilium"), _deployment("cilium-operator"),
                _daemonset("kube-proxy", node_selector=NOWHERE)]
        # CRDs through the typed API: the loader's Established wait trips over a CRD whose
        # status has no conditions yet (reported to its owner).
        for plural, kind, scope in CILIUM_CRDS:
            if f"{plural}.cilium.io" in made_crds:
                ext.create_custom_resource_definition(_crd(plural, kind, scope))
        waiting.wait_for("the Cilium CRDs to be Established", lambda: [
            c.type for name in made_crds for c in ext.read_custom_resource_definition(name).status.conditions or []
            if c.type == "Established" and c.status == "True"], until=lambda est: len(est) == len(made_crds),
            timeout="crd_established")
        manifests.apply(docs, admin_api, namespace=ns)
        custom.create_cluster_custom_object("cilium.io", "v2", "ciliumnodes", {
            "apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {"name": "pcf-node"}})
        custom.create_namespaced_custom_object("cilium.io", "v2", ns, "ciliumendpoints", {
            "apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint", "metadata": {"name": "healthy"},
            "status": {"state": "ready"}})
        waiting.wait_for(f"seeded Deployments and DaemonSet in {ns} to be ready", lambda: (
            apps.read_namespaced_deployment("coredns", ns).status.ready_replicas,
            apps.read_namespaced_deployment("cilium-operator", ns).status.available_replicas,
            apps.read_namespaced_daemon_set("cilium", ns).status.number_ready),
            until=lambda s: s == (1, 1, 1), timeout=SEEDED_S)
        ip = core.read_namespaced_service("coredns", ns).spec.cluster_ip
        yield {"namespace": ns, "dns_ip": ip, "custom": custom}
    finally:
        _gone(lambda: core.delete_namespace(ns))
        _gone(lambda: custom.delete_cluster_custom_object("cilium.io", "v2", "ciliumnodes", "pcf-node"))
        for name in made_crds:
            _gone(lambda name=name: ext.delete_custom_resource_definition(name))
        waiting.wait_for(f"namespace {ns} to be gone", lambda: [n.metadata.name for n in core.list_namespace().items],
                         until=lambda names: ns not in names, timeout="namespace_deleted")


def _gone(delete) -> None:
    """Delete, where already gone is fine (a seed step may have failed before creating it)."""
    try:
        delete()
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


def _read_only(tmp_path, tests: list[str], changes: dict, keyword: str | None = None):
    return run_suites(tests, tmp_path, mode="read-only", profile=derived_profile(tmp_path / "profile.yaml", **changes), keyword=keyword)


def _dns(seeded, deployment: str, ip: str | None = None) -> dict:
    return {"components": {"dns": {"namespace": seeded["namespace"], "service": "coredns", "deployment": deployment,
                                   "ip": ip or seeded["dns_ip"], "replicas": 1}}}


def test_dns_checks_pass_on_the_seeded_healthy_dns_server(seeded, tmp_path):
    run = _read_only(tmp_path, ["suites/test_dns.py"], _dns(seeded, "coredns"), keyword="profile")
    assert run.outcomes("dns/server/service-matches-profile") == {"passed"}, run.output
    assert run.outcomes("dns/server/replicas-match-profile") == {"passed"}, run.output


def test_dns_checks_name_the_deployment_without_ready_replicas_and_the_wrong_ip(seeded, tmp_path):
    ns = seeded["namespace"]
    run = _read_only(tmp_path, ["suites/test_dns.py"], _dns(seeded, "coredns-broken", ip="10.96.0.10"), keyword="profile")
    [replicas] = run.failures("dns/server/replicas-match-profile")
    assert f"Deployment {ns}/coredns-broken: 0 of 1 replicas ready" in replicas["reason"], replicas
    [service] = run.failures("dns/server/service-matches-profile")
    assert f"Service {ns}/coredns: clusterIPs ['{seeded['dns_ip']}'] (profile: 10.96.0.10)" in service["reason"], service
    assert run.exit_code == 1


def test_control_plane_checks_name_a_missing_node_and_a_leftover_kube_proxy(seeded, tmp_path):
    ns = seeded["namespace"]
    (tmp_path / "healthy").mkdir()
    healthy = _read_only(tmp_path / "healthy", ["suites/test_control_plane.py"], {})
    assert healthy.exit_code == 0, healthy.output
    broken = _read_only(tmp_path, ["suites/test_control_plane.py"],
                        {"cluster": {"nodes": ["pcf-node", "thymine"], "kube_proxy": "replaced"}})
    [ready] = broken.failures("control-plane/nodes/ready")
    assert "not proven on node thymine: the cluster has no node thymine" in ready["reason"], ready
    [proxy] = broken.failures("control-plane/kube-proxy/absent-where-replaced")
    assert f"{ns}/kube-proxy" in proxy["reason"], proxy


def test_runtime_check_names_the_node_with_another_runtime(tmp_path):
    healthy = _read_only(tmp_path, ["suites/test_runtime.py"], {}, keyword="expected_runtime")
    assert healthy.outcomes("runtime/nodes/expected-runtime") == {"passed"}, healthy.output
    (tmp_path / "broken").mkdir()
    running = paths.runtime()
    other = next(name for name in paths.RUNTIMES if name != running)
    broken = _read_only(tmp_path / "broken", ["suites/test_runtime.py"],
                        {"components": {"runtime": {"name": other, "min_version": "1.33"}}}, keyword="expected_runtime")
    [failure] = broken.failures("runtime/nodes/expected-runtime")
    assert f"profile: {other} >= 1.33; nodes report: pcf-node: {running}://" in failure["reason"], failure


def test_cilium_checks_pass_on_healthy_objects_and_name_each_broken_one(seeded, tmp_path, admin_api):
    ns, custom = seeded["namespace"], seeded["custom"]
    claim = {"components": {"cilium": {"claimed": True, "namespace": ns}}}
    # Cilium gives every running pod on the pod network an endpoint: seed one for each, as it would.
    pods = [p for p in k8s.CoreV1Api(admin_api).list_pod_for_all_namespaces().items
            if p.status.phase == "Running" and not p.spec.host_network]
    for pod in pods:
        custom.create_namespaced_custom_object("cilium.io", "v2", pod.metadata.namespace, "ciliumendpoints", {
            "apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint", "metadata": {"name": pod.metadata.name},
            "status": {"state": "ready"}})
    try:
        _cilium_checks_on_seeded(ns, custom, claim, tmp_path, admin_api)
    finally:
        for pod in pods:
            _gone(lambda pod=pod: custom.delete_namespaced_custom_object(
                "cilium.io", "v2", pod.metadata.namespace, "ciliumendpoints", pod.metadata.name))


def _cilium_checks_on_seeded(ns, custom, claim, tmp_path, admin_api):
    (tmp_path / "healthy").mkdir()
    healthy = _read_only(tmp_path / "healthy", ["suites/test_cilium.py"], claim)
    assert {p: healthy.outcomes(p) for p in healthy.promises} == {p: {"passed"} for p in healthy.promises}, healthy.output
    assert len(healthy.promises) == 4
    # Break each: a failed endpoint, the node's CiliumNode gone, the operator unable to run.
    custom.create_namespaced_custom_object("cilium.io", "v2", ns, "ciliumendpoints", {
        "apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint", "metadata": {"name": "broken"},
        "status": {"state": "invalid"}})
    custom.delete_cluster_custom_object("cilium.io", "v2", "ciliumnodes", "pcf-node")
    k8s.AppsV1Api(admin_api).patch_namespaced_deployment("cilium-operator", ns, {"spec": {"template": {"spec": {
        "nodeSelector": NOWHERE}}, "strategy": {"type": "Recreate", "rollingUpdate": None}}})
    waiting.wait_for(f"Deployment {ns}/cilium-operator to have no available replica", lambda: k8s.AppsV1Api(
        admin_api).read_namespaced_deployment("cilium-operator", ns).status.available_replicas,
        until=lambda n: not n, timeout=SEEDED_S)
    (tmp_path / "broken").mkdir()
    broken = _read_only(tmp_path / "broken", ["suites/test_cilium.py"], claim)
    assert f"stuck: CiliumEndpoint {ns}/broken: state invalid" in \
        broken.failures("cilium/endpoints/none-failed")[0]["reason"]
    assert "not proven on node pcf-node" in broken.failures("cilium/nodes/cilium-node-per-node")[0]["reason"]
    assert f"Deployment {ns}/cilium-operator: 0 of 1" in broken.failures("cilium/operator/available")[0]["reason"]
    assert broken.outcomes("cilium/agent/ready-on-every-node") == {"passed"}


READER_USER = "platform-conformance:reader"


def test_the_read_only_judge_flags_the_reader_opening_exec_attach_port_forward_and_proxy():
    """The judge of a read-only run MUST reject a request by the reader on exec, attach,
    portforward or proxy, although the audit log records each of them as a `get`, and even when
    RBAC refused it: a read-only run must not ask."""
    # A plain client, without the suite's guard (which refuses these before they leave), so the
    # requests reach the API server as a faulty read-only run would send them. The pod name is
    # this test's own, so its requests are told apart from anyone else's in the shared log.
    reader = manifests.api_client(paths.kubeconfig("reader"))
    core = k8s.CoreV1Api(reader)
    ns, pod = "kube-system", f"pcf-audit-proof-{uuid.uuid4().hex[:8]}"
    since = runs.now() - dt.timedelta(seconds=1)
    attempts = {
        "exec": lambda: stream(core.connect_get_namespaced_pod_exec, pod, ns, command=["true"], stderr=True,
                               stdin=False, stdout=True, tty=False, _preload_content=False, _request_timeout=10),
        "attach": lambda: stream(core.connect_get_namespaced_pod_attach, pod, ns, stderr=True, stdin=False,
                                 stdout=True, tty=False, _preload_content=False, _request_timeout=10),
        "portforward": lambda: portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="8080",
                                           _request_timeout=10),
        "proxy": lambda: core.connect_get_namespaced_pod_proxy_with_path(pod, ns, "healthz", _request_timeout=10),
        "read": lambda: core.read_namespaced_pod(pod, ns, _request_timeout=10),  # a plain read, for contrast
    }
    refused = {}
    for what, attempt in attempts.items():
        try:
            opened = attempt()
        except Exception as exc:  # noqa: BLE001 - a refusal (403, or 404 for the read) is expected
            refused[what] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}"
        else:
            refused[what] = None
            getattr(opened, "close", lambda: None)()
    assert all(refused.values()), f"the API server answered the reader: {refused}"

    def ours() -> list[dict]:
        return [e for e in audit_since(since, READER_USER) if (e.get("objectRef") or {}).get("name") == pod]

    # Streams are logged twice (ResponseStarted, then ResponseComplete) under one audit id.
    events = waiting.wait_for(f"the audit log to show the {len(attempts)} requests on pod {ns}/{pod}", ours,
                              until=lambda found: len({e["auditID"] for e in found}) >= len(attempts), timeout=30)
    # What the log really holds: every one of them a `get`, so a judge of verbs alone saw nothing.
    assert sorted({e["verb"] for e in events}) == ["get"], [e["verb"] for e in events]
    assert not_read_only(events) == [f"get pods/{sub} {ns}/{pod} -> 403"
                                     for sub in ("attach", "exec", "portforward", "proxy")], events
    # A read-only run judged next opens its window a second before it starts: let these
    # refused requests fall out of it, so they are not charged to that run.
    last = max(runs.parse_time(e["requestReceivedTimestamp"]) for e in events)
    waiting.wait_for("the proof's requests to be 2 s old", runs.now,
                     until=lambda at: at - last > dt.timedelta(seconds=2), timeout=10, interval=0.2)

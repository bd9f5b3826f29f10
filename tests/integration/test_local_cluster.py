"""Smoke tests of the embedded default: the local cluster is a working Kubernetes.

Each test proves one thing a user of the local cluster relies on, with real workloads.
"""
from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import run as runs
from conformance.cluster import network
from conformance.pods import exec_in, wait_pod
from conformance.waiting import wait_for

AGNHOST = None  # resolved from the stack list at run time
PROBE = "localhost/platform-conformance/probe:0.1.0"

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _agnhost() -> str:
    from conformance.cluster import build, stack_images

    progs = build.programs()
    spec = next(s for s in build.load_stack()["images"] if s.get("build") == "e2e-agnhost")
    return stack_images._tag(spec, progs)


@pytest.fixture
def namespace(admin_api):
    core = k8s.CoreV1Api(admin_api)
    name = f"pcf-smoke-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "app.kubernetes.io/managed-by": "platform-conformance"}}})
    yield name
    runs.delete_and_wait(DynamicClient(admin_api), "v1", "Namespace", name, timeout="namespace_deleted")


def _pod(name: str, image: str, args: list[str], labels: dict[str, str]) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
                        "securityContext": RESTRICTED}]}}


def _wait_running(core: k8s.CoreV1Api, ns: str, name: str):
    return wait_pod(core.api_client, ns, name)


def _server_and_service(core, ns) -> str:
    core.create_namespaced_pod(ns, _pod("echo", _agnhost(), ["netexec", "--http-port=8080"], {"app": "echo"}))
    core.create_namespaced_service(ns, {"metadata": {"name": "echo"}, "spec": {
        "selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    _wait_running(core, ns, "echo")
    return f"echo.{ns}.svc.cluster.local"


def _client(core, ns, name: str, labels: dict[str, str]) -> None:
    core.create_namespaced_pod(ns, _pod(name, _agnhost(), ["pause"], labels))
    _wait_running(core, ns, name)


def test_node_is_ready(admin_api):
    node = k8s.CoreV1Api(admin_api).read_node(network.NODE_NAME)
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready.get("Ready") == "True", f"node conditions: {ready}"


def test_pod_resolves_kubernetes_service_through_coredns(admin_api, namespace):
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_pod(namespace, _pod("dns", PROBE, ["sleep", "3600"], {"app": "dns"}))
    _wait_running(core, namespace, "dns")
    result = exec_in(admin_api, namespace, "dns", ["getent", "hosts", "kubernetes.default.svc.cluster.local"])
    service_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert result.exit_code == 0, result
    assert result.stdout.split()[0] == service_ip, result


def test_service_routes_to_agnhost_pod(admin_api, namespace):
    core = k8s.CoreV1Api(admin_api)
    host = _server_and_service(core, namespace)
    _client(core, namespace, "client", {"app": "client"})
    result = exec_in(admin_api, namespace, "client", ["/agnhost", "connect", f"{host}:80", "--timeout=5s"])
    assert result.exit_code == 0, result


def test_network_policy_denies_one_client_and_admits_another(admin_api, namespace):
    core = k8s.CoreV1Api(admin_api)
    host = _server_and_service(core, namespace)
    _client(core, namespace, "allowed", {"app": "allowed"})
    _client(core, namespace, "denied", {"app": "denied"})
    k8s.NetworkingV1Api(admin_api).create_namespaced_network_policy(namespace, {
        "metadata": {"name": "only-allowed"},
        "spec": {"podSelector": {"matchLabels": {"app": "echo"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "allowed"}}}]}]}})
    # The firewall programs the policy asynchronously: wait until the denied client is refused.
    wait_for("the policy to refuse client 'denied'",
             lambda: exec_in(admin_api, namespace, "denied", ["/agnhost", "connect", f"{host}:80", "--timeout=2s"]),
             until=lambda result: result.exit_code != 0, timeout="policy_enforced")
    allowed = exec_in(admin_api, namespace, "allowed", ["/agnhost", "connect", f"{host}:80", "--timeout=5s"])
    assert allowed.exit_code == 0, f"allowed client refused: {allowed}"

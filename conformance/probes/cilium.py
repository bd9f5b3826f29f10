"""Cilium probes, read-only: the agent on every node, the operator, CiliumNodes, CiliumEndpoints.

Nothing here writes, and nothing writes Cilium status: the checks read the agent DaemonSet and
its pods, the operator Deployment, the cluster-scoped CiliumNode objects (one per node that
Cilium manages) and the CiliumEndpoints of every namespace. Names follow Cilium's Helm chart.
"""
from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client as k8s

AGENT = "cilium"
OPERATOR = "cilium-operator"
GROUP, VERSION = "cilium.io", "v2"
# Endpoint states that mean Cilium gave up on an endpoint (not a passing state such as
# regenerating or waiting-for-identity).
FAILED_STATES = frozenset({"invalid"})
REQUEST_TIMEOUT = (5, 30)


@dataclass(frozen=True)
class Agent:
    """The agent DaemonSet and where its pods are not ready."""

    namespace: str
    found: bool
    desired: int
    ready: int
    nodes_with_ready_agent: tuple[str, ...]
    not_ready: tuple[str, ...]  # "pod on node: why"


def agent(api: k8s.ApiClient, namespace: str, name: str = AGENT) -> Agent:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    try:
        ds = apps.read_namespaced_daemon_set(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        return Agent(namespace, False, 0, 0, (), ())
    selector = ",".join(f"{k}={v}" for k, v in (ds.spec.selector.match_labels or {}).items())
    pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
    ready_nodes, not_ready = [], []
    for pod in pods:
        conds = {c.type: c for c in pod.status.conditions or []}
        if conds.get("Ready") is not None and conds["Ready"].status == "True":
            ready_nodes.append(pod.spec.node_name)
        else:
            why = conds["Ready"].reason if conds.get("Ready") else pod.status.phase
            not_ready.append(f"{namespace}/{pod.metadata.name} on {pod.spec.node_name}: {why}")
    st = ds.status
    return Agent(namespace, True, st.desired_number_scheduled or 0, st.number_ready or 0,
                 tuple(sorted(ready_nodes)), tuple(not_ready))


@dataclass(frozen=True)
class Operator:
    namespace: str
    name: str
    found: bool
    desired: int
    available: int


def operator(api: k8s.ApiClient, namespace: str, name: str = OPERATOR) -> Operator:
    try:
        dep = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        return Operator(namespace, name, False, 0, 0)
    return Operator(namespace, name, True, dep.spec.replicas or 0, dep.status.available_replicas or 0)


def cilium_nodes(api: k8s.ApiClient) -> tuple[str, ...]:
    listed = k8s.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "ciliumnodes",
                                                                  _request_timeout=REQUEST_TIMEOUT)
    return tuple(sorted(i["metadata"]["name"] for i in listed.get("items") or []))


@dataclass(frozen=True)
class EndpointState:
    name: str  # namespace/name
    state: str | None


def failed_endpoints(api: k8s.ApiClient) -> tuple[EndpointState, ...]:
    listed = k8s.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "ciliumendpoints",
                                                                  _request_timeout=REQUEST_TIMEOUT)
    out = []
    for item in listed.get("items") or []:
        state = (item.get("status") or {}).get("state")
        if state in FAILED_STATES:
            meta = item["metadata"]
            out.append(EndpointState(f"{meta['namespace']}/{meta['name']}", state))
    return tuple(out)

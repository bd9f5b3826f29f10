"""Cilium probes, read-only: the agent on every node, the operator, CiliumNodes, CiliumEndpoints.

Nothing here writes, and nothing writes Cilium status: the checks read the agent DaemonSet and
its pods, the operator Deployment, the cluster-scoped CiliumNode objects (one per node that
Cilium manages), and the CiliumEndpoints of every namespace beside the pods that should have one. Names follow Cilium's Helm chart.
"""
from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client as k8s

from conformance.pods import TRANSIENT
from conformance.waiting import WaitTimeout, wait_for

AGENT = "cilium"
OPERATOR = "cilium-operator"
GROUP, VERSION = "cilium.io", "v2"
# The state a healthy endpoint ends in, and the one that means Cilium gave up on it. Every other
# state passes through, so an endpoint in one fails only when it stays there (see EndpointHealth).
READY = "ready"
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
    uid: str = ""


@dataclass(frozen=True)
class Endpoints:
    """The CiliumEndpoints, and the running pods on the pod network that each should have one.

    Cilium names a pod's endpoint after the pod, in the pod's namespace. An endpoint ends up
    `ready`; `invalid` means Cilium gave up on it; any other state (not-ready, disconnected,
    waiting-for-identity, regenerating, ...) is on the way somewhere, and a problem only if it stays.
    """

    endpoints: tuple[EndpointState, ...]
    pods: tuple[str, ...]  # namespace/name of running pods that do not use the host's network

    @property
    def failed(self) -> tuple[EndpointState, ...]:
        return tuple(e for e in self.endpoints if e.state in FAILED_STATES)

    @property
    def not_ready(self) -> tuple[EndpointState, ...]:
        return tuple(e for e in self.endpoints if e.state != READY and e.state not in FAILED_STATES)

    @property
    def pods_without_endpoint(self) -> tuple[str, ...]:
        have = {e.name for e in self.endpoints}
        return tuple(p for p in self.pods if p not in have)

    def problems(self) -> dict[str, str]:
        """Each problem by its subject (an endpoint or a pod), so that one seen twice is known again."""
        out = {f"CiliumEndpoint {e.name}": f"state {e.state or 'unset'}" for e in self.failed + self.not_ready}
        lost = self.pods_without_endpoint
        why = "no CiliumEndpoint at all while pods run" if lost and not self.endpoints else "no CiliumEndpoint"
        out.update({f"pod {p}": why for p in lost})
        return out


def endpoints_of(items: list[dict], pods: list[k8s.V1Pod]) -> Endpoints:
    """Endpoints from listed CiliumEndpoint objects; the pods that should have one from listed pods."""
    found = []
    for item in items:
        meta = item.get("metadata") or {}
        found.append(EndpointState(f"{meta.get('namespace')}/{meta.get('name')}",
                                   (item.get("status") or {}).get("state"), meta.get("uid", "")))
    running = [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods
               if p.status and p.status.phase == "Running" and not (p.spec and p.spec.host_network)]
    return Endpoints(tuple(sorted(found, key=lambda e: e.name)), tuple(sorted(running)))


def read_endpoints(api: k8s.ApiClient) -> Endpoints:
    listed = k8s.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "ciliumendpoints",
                                                                  _request_timeout=REQUEST_TIMEOUT)
    pods = k8s.CoreV1Api(api).list_pod_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items
    return endpoints_of(listed.get("items") or [], pods)


@dataclass(frozen=True)
class EndpointHealth:
    """Endpoints read once and again after they had time to settle; what stayed wrong is stuck."""

    first: Endpoints
    last: Endpoints

    @property
    def stuck(self) -> dict[str, str]:
        """Failed endpoints, and problems seen at the first read that are still there at the last."""
        before, now = self.first.problems(), self.last.problems()
        failed = {f"CiliumEndpoint {e.name}": f"state {e.state}" for e in self.last.failed}
        return {**{k: v for k, v in now.items() if k in before}, **failed}

    def __str__(self) -> str:
        stuck = self.stuck
        # What is stuck leads, on one line: a failure's first line is what a summary keeps.
        lines = [f"stuck: {'; '.join(f'{k}: {v}' for k, v in stuck.items())}"] if stuck else []
        lines += [f"{len(self.last.endpoints)} CiliumEndpoints, {len(self.last.pods)} running pods on the pod network"]
        lines += [f"settling: {k}: {v}" for k, v in self.last.problems().items() if k not in stuck]
        return "\n".join(lines)


def endpoint_health(api: k8s.ApiClient, settle: str = "endpoints_ready") -> EndpointHealth:
    """Read the endpoints; if anything is wrong, give it the `settle` timeout to come right."""
    first = read_endpoints(api)
    if not first.problems():
        return EndpointHealth(first, first)

    def settled(now: Endpoints) -> bool:
        return not EndpointHealth(first, now).stuck

    try:
        last = wait_for("the CiliumEndpoints and pods that were not ready to settle", lambda: read_endpoints(api),
                        until=settled, timeout=settle, retry_on=TRANSIENT)
    except WaitTimeout as exc:
        last = exc.last_state if isinstance(exc.last_state, Endpoints) else read_endpoints(api)
    return EndpointHealth(first, last)

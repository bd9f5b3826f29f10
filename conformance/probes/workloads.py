"""The probe workloads: rendering their manifests, deploying the shared set, and finding them.

The shared set (manifests/probes/shared.yaml) is a probe pod and an echo server on every
schedulable node plus the Services the DNS and networking promises use. It is deployed once per
run (the pytest glue calls `deploy` through the shared-workload mechanism) and read back with
`ProbeSet.read` by every test, so a pod that was replaced since is seen as it is now. A probe on
every node means a node-local fault shows up as that node's failure.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client as k8s

from conformance import manifests
from conformance.pods import TRANSIENT, PodView
from conformance.profile import Images
from conformance.waiting import wait_for

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "probes"
PROBE_IMAGE = "localhost/platform-conformance/probe:0.1.0"
ECHO_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
SHARED = "core-probes"  # the shared workload's name in the run's record
PROBE_SELECTOR = "app.kubernetes.io/name=pcf-probe"
ECHO_SELECTOR = "app.kubernetes.io/name=pcf-echo"
ECHO_PORT = 8080
REQUEST_TIMEOUT = (5, 30)


def render(name: str, images: Images | None = None, **values: str) -> list[dict]:
    """The documents of manifests/probes/<name>.yaml with its ${PLACEHOLDERS} filled in.

    Images go through the profile's mirror prefix. A placeholder left without a value is an
    error (KeyError naming it), never an empty string in a manifest.
    """
    images = images or Images()
    text = (MANIFESTS / f"{name}.yaml").read_text()
    filled = string.Template(text).substitute(
        {"PROBE_IMAGE": images.image(PROBE_IMAGE), "ECHO_IMAGE": images.image(ECHO_IMAGE), **values})
    docs = [d for d in yaml.safe_load_all(filled) if d]
    if images.pull_secret:
        for doc in docs:
            spec = _pod_spec(doc)
            if spec is not None:
                spec["imagePullSecrets"] = [{"name": images.pull_secret}]
    return docs


def _pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") == "Pod":
        return doc["spec"]
    if doc.get("kind") in ("DaemonSet", "Deployment"):
        return doc["spec"]["template"]["spec"]
    return None


def apply(api: k8s.ApiClient, namespace: str, name: str, images: Images | None = None, **values: str) -> list:
    """Render manifests/probes/<name>.yaml and apply it into `namespace` through the one loader."""
    return manifests.apply(render(name, images, **values), api, namespace=namespace)


# --- the shared set --------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceView:
    name: str
    cluster_ips: tuple[str, ...]
    node_port: int | None
    port: int


@dataclass(frozen=True)
class ProbeSet:
    """The shared probe workloads as they are now: clients and echo servers by node."""

    namespace: str
    clients: tuple[PodView, ...]
    servers: tuple[PodView, ...]
    services: dict[str, ServiceView]
    schedulable_nodes: tuple[str, ...]

    @classmethod
    def read(cls, api: k8s.ApiClient, namespace: str) -> ProbeSet:
        core = k8s.CoreV1Api(api)
        pods = core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT).items
        clients = tuple(sorted((PodView.of(p) for p in pods if _has(p, PROBE_SELECTOR)), key=_by_node))
        servers = tuple(sorted((PodView.of(p) for p in pods if _has(p, ECHO_SELECTOR)), key=_by_node))
        services = {}
        for svc in core.list_namespaced_service(namespace, _request_timeout=REQUEST_TIMEOUT).items:
            port = (svc.spec.ports or [None])[0]
            services[svc.metadata.name] = ServiceView(
                svc.metadata.name, tuple(ip for ip in svc.spec.cluster_ips or [] if ip != "None"),
                port.node_port if port else None, port.port if port else 0)
        return cls(namespace, clients, servers, services, schedulable_nodes(api))

    def client_on(self, node: str) -> PodView | None:
        return next((c for c in self.clients if c.node == node), None)

    def server_on(self, node: str) -> PodView | None:
        return next((s for s in self.servers if s.node == node), None)

    def ready_clients(self) -> tuple[PodView, ...]:
        """The probe pods that can be asked: ready, on a schedulable node."""
        return tuple(c for c in self.clients if c.ready and c.node in self.schedulable_nodes)

    def ipv4(self, service: str) -> str | None:
        return next((ip for ip in self.services[service].cluster_ips if ":" not in ip), None)

    def ipv6(self, service: str) -> str | None:
        return next((ip for ip in self.services[service].cluster_ips if ":" in ip), None)

    def missing(self) -> list[str]:
        """Schedulable nodes without a ready probe or echo pod, each with the reason seen."""
        out = []
        for node in self.schedulable_nodes:
            for kind, pod in (("probe", self.client_on(node)), ("echo server", self.server_on(node))):
                if pod is None:
                    out.append(f"node {node} has no {kind} pod")
                elif not pod.ready:
                    out.append(f"{kind} {pod.where} is not ready: {pod.phase}; {pod.why}")
        return out

    def fqdn(self, service: str, domain: str) -> str:
        return f"{service}.{self.namespace}.svc.{domain}"


def _has(pod: k8s.V1Pod, selector: str) -> bool:
    key, value = selector.split("=", 1)
    return (pod.metadata.labels or {}).get(key) == value


def _by_node(v: PodView) -> str:
    return v.node or ""


def schedulable_nodes(api: k8s.ApiClient) -> tuple[str, ...]:
    """Nodes a plain pod can land on: not cordoned, no NoSchedule or NoExecute taint."""
    out = []
    for node in k8s.CoreV1Api(api).list_node(_request_timeout=REQUEST_TIMEOUT).items:
        taints = [t for t in node.spec.taints or [] if t.effect in ("NoSchedule", "NoExecute")]
        if not node.spec.unschedulable and not taints:
            out.append(node.metadata.name)
    return tuple(sorted(out))


def deploy(api: k8s.ApiClient, namespace: str, images: Images | None, domain: str) -> dict:
    """Apply the shared set into `namespace` and wait until every schedulable node has a ready
    probe and echo pod and the echo Service has endpoints; returns JSON-able facts."""
    apply(api, namespace, "shared", images, NAMESPACE=namespace, DOMAIN=domain)

    def problems() -> list[str]:
        found = ProbeSet.read(api, namespace)
        for pod in found.clients + found.servers:
            pod.check_pull()  # an image that cannot be pulled ends the wait at once
        return found.missing() if found.schedulable_nodes else ["no node is schedulable"]

    wait_for(f"a ready probe and echo pod on every schedulable node in {namespace}", problems,
             until=lambda found: not found, timeout="pod_ready", retry_on=TRANSIENT)
    return {"nodes": list(schedulable_nodes(api))}

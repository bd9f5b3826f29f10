"""The probe workloads: rendering their manifests, deploying the shared set, and finding them.

The shared set (manifests/probes/shared.yaml) is a probe pod and an echo server on every node
they can run on (Ready, no taint they do not tolerate: see conformance.probes.coverage) plus the
Services the DNS and networking promises use. It is deployed once per run (the pytest glue calls `deploy` through the shared-workload mechanism) and read back with
`ProbeSet.read` by every test, so a pod that was replaced since is seen as it is now. A probe on
every node means a node-local fault shows up as that node's failure.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from kubernetes import client as k8s

from conformance import manifests
from conformance.pods import TRANSIENT, PodView
from conformance.probes import coverage
from conformance.probes import control_plane
from conformance.profile import Images
from conformance.waiting import wait_for

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "probes"
PROBE_IMAGE = "localhost/platform-conformance/probe:0.1.0"
ECHO_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
GIT_IMAGE = "localhost/platform-conformance/git:0.1.0"  # the run's git server (Argo CD's source)
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
        {"PROBE_IMAGE": images.image(PROBE_IMAGE), "ECHO_IMAGE": images.image(ECHO_IMAGE),
         "GIT_IMAGE": images.image(GIT_IMAGE), **values})
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
    """The shared probe workloads as they are now: clients and echo servers by node, and the
    nodes they must cover (the profile's nodes, and every node a probe pod can run on)."""

    namespace: str
    clients: tuple[PodView, ...]
    servers: tuple[PodView, ...]
    services: dict[str, ServiceView]
    profile_nodes: tuple[str, ...]
    cluster_nodes: dict[str, control_plane.NodeFacts]

    @classmethod
    def read(cls, api: k8s.ApiClient, namespace: str, profile_nodes: tuple[str, ...] = ()) -> ProbeSet:
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
        return cls(namespace, clients, servers, services, tuple(profile_nodes), control_plane.nodes(api))

    def client_on(self, node: str) -> PodView | None:
        return next((c for c in self.clients if c.node == node), None)

    def server_on(self, node: str) -> PodView | None:
        return next((s for s in self.servers if s.node == node), None)

    def expected(self, *kinds: str) -> coverage.Expected:
        """The nodes a promise asked through `kinds` ("probe", "echo") must be proven from, each
        with why it cannot be: the node itself, or a missing or unready pod of a kind."""
        pods = {"probe": self.client_on, "echo": self.server_on}
        found = coverage.for_probes(self.profile_nodes, self.cluster_nodes)
        return found.with_reasons({n: _pod_problem([(k, pods[k](n)) for k in kinds or ("probe",)])
                                   for n in found.nodes})

    @property
    def nodes(self) -> tuple[str, ...]:
        """Nodes where a ready probe and echo pod can be asked now."""
        return self.expected("probe", "echo").askable

    def ready_clients(self) -> tuple[PodView, ...]:
        """The probe pods to ask: one on each expected node that has a ready one."""
        return tuple(self.client_on(n) for n in self.expected("probe").askable)

    def ready_servers(self) -> tuple[PodView, ...]:
        return tuple(self.server_on(n) for n in self.expected("echo").askable)

    def coverage(self, asked: Iterable[PodView | str | None], *kinds: str) -> coverage.Coverage:
        """Which expected nodes the pods (or node names) in `asked` prove the promise from, and
        which were not asked and why."""
        return self.expected(*kinds).coverage(a.node if isinstance(a, PodView) else a for a in asked)

    def missing(self, *kinds: str) -> list[str]:
        """Expected nodes without a ready pod of each kind (default: probe and echo) to ask, each
        with why; a set with no expected node at all says so."""
        expected = self.expected(*(kinds or ("probe", "echo")))
        return list(expected.coverage(expected.askable).gaps)

    def ipv4(self, service: str) -> str | None:
        return next((ip for ip in self.services[service].cluster_ips if ":" not in ip), None)

    def ipv6(self, service: str) -> str | None:
        return next((ip for ip in self.services[service].cluster_ips if ":" in ip), None)

    def fqdn(self, service: str, domain: str) -> str:
        return f"{service}.{self.namespace}.svc.{domain}"


def _pod_problem(pods: list[tuple[str, PodView | None]]) -> str | None:
    for kind, pod in pods:
        if pod is None:
            return f"no {kind} pod runs on it"
        if not pod.ready:
            return f"{kind} pod {pod.where} is not ready: {pod.phase}; {pod.why}"
    return None


def _has(pod: k8s.V1Pod, selector: str) -> bool:
    key, value = selector.split("=", 1)
    return (pod.metadata.labels or {}).get(key) == value


def _by_node(v: PodView) -> str:
    return v.node or ""


def deploy(api: k8s.ApiClient, namespace: str, images: Images | None, domain: str) -> dict:
    """Apply the shared set into `namespace` and wait until every node a probe pod can run on has
    a ready probe and echo pod; returns JSON-able facts."""
    apply(api, namespace, "shared", images, NAMESPACE=namespace, DOMAIN=domain)

    def problems() -> list[str]:
        # Only nodes a probe pod can run on are waited for (the profile's nodes are left out
        # here): a node that cannot get one (missing, NotReady, tainted) fails each per-node
        # promise by name instead of stalling the run.
        found = ProbeSet.read(api, namespace)
        for pod in found.clients + found.servers:
            pod.check_pull()  # an image that cannot be pulled ends the wait at once
        placed = found.expected("probe", "echo")
        return [f"node {n}: {why}" for n, why in placed.nodes.items() if why]

    wait_for(f"a ready probe and echo pod on every node a probe pod can run on in {namespace}", problems,
             until=lambda found: not found, timeout="pod_ready", retry_on=TRANSIENT)
    return {"nodes": list(ProbeSet.read(api, namespace).nodes)}

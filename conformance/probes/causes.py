"""Likely causes of a core failure: what is wrong with the nodes, the runtime, DNS or policy now.

A failed DNS lookup or a connection that timed out says what failed, not why. When a core
promise fails, the diagnostics ask this module which of the usual culprits is present: a node
that is NotReady (the kubelet's message names a stopped runtime) or cordoned, a DNS Deployment
without ready replicas or a DNS Service without endpoints, a NetworkPolicy in a namespace the
traffic crosses, a probe pod that is not ready. Each finding names the object, so that every
failure one broken component drags along cites the same cause.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kubernetes import client as k8s

from conformance.pods import PodView
from conformance.probes import dns
from conformance.probes.control_plane import nodes

REQUEST_TIMEOUT = (5, 15)


@dataclass(frozen=True)
class Findings:
    causes: tuple[str, ...]
    checked: tuple[str, ...]  # what was looked at, so an empty finding says what is ruled out
    errors: tuple[str, ...]  # parts that could not be read

    def text(self) -> str:
        if self.causes:
            lines = ["likely causes:"] + [f"  - {c}" for c in self.causes]
        else:
            lines = ["no known cause found; checked: " + "; ".join(self.checked)]
        lines += [f"  (could not check: {e})" for e in self.errors]
        return "\n".join(lines)


def find(api: k8s.ApiClient, dns_names: tuple[str, str, str] | None = None, dns_ip: str | None = None,
         dns_replicas: int | None = None, namespaces: Iterable[str] = (),
         expected_nodes: Iterable[str] = ()) -> Findings:
    """Look for the usual causes. `dns_names` is (namespace, service, deployment) when DNS is
    claimed; `namespaces` are those the failing traffic starts or ends in."""
    causes: list[str] = []
    checked: list[str] = []
    errors: list[str] = []

    def attempt(what: str, look) -> None:
        checked.append(what)
        try:
            causes.extend(look())
        except Exception as exc:  # noqa: BLE001 - a finding that cannot be read must not hide others
            errors.append(f"{what}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")

    attempt("nodes", lambda: _nodes(api, tuple(expected_nodes)))
    if dns_names:
        ns, svc, dep = dns_names
        attempt(f"DNS Service {ns}/{svc} and Deployment {ns}/{dep}",
                lambda: dns.server(api, ns, svc, dep).problems(dns_ip, dns_replicas))
    for ns in dict.fromkeys(namespaces):
        attempt(f"NetworkPolicies in {ns}", lambda ns=ns: _policies(api, ns))
        attempt(f"pods in {ns}", lambda ns=ns: _pods(api, ns))
    return Findings(tuple(causes), tuple(checked), tuple(errors))


def _nodes(api: k8s.ApiClient, expected: tuple[str, ...]) -> list[str]:
    found = nodes(api)
    out = [f"node {name} does not exist" for name in expected if name not in found]
    for n in found.values():
        if n.ready != "True":
            out.append(f"node {n.name} is not Ready (Ready={n.ready}, {n.ready_reason})")
        if n.unschedulable:
            out.append(f"node {n.name} is cordoned (spec.unschedulable: true)")
        out += [f"node {n.name}: {p}" for p in n.problems]
    return out


def _policies(api: k8s.ApiClient, namespace: str) -> list[str]:
    out = []
    for p in k8s.NetworkingV1Api(api).list_namespaced_network_policy(namespace, _request_timeout=REQUEST_TIMEOUT).items:
        selector = p.spec.pod_selector.match_labels or {} if p.spec.pod_selector else {}
        picks = "every pod" if not selector and not (p.spec.pod_selector and p.spec.pod_selector.match_expressions) \
            else f"pods {selector}"
        types = p.spec.policy_types or ["Ingress"]
        rules = []
        if "Ingress" in types:
            rules.append("ingress " + ("denied" if not p.spec.ingress else f"limited to {len(p.spec.ingress)} rule(s)"))
        if "Egress" in types:
            rules.append("egress " + ("denied" if not p.spec.egress else f"limited to {len(p.spec.egress)} rule(s)"))
        out.append(f"NetworkPolicy {namespace}/{p.metadata.name} selects {picks}: {', '.join(rules)}")
    return out


def _pods(api: k8s.ApiClient, namespace: str) -> list[str]:
    out = []
    for pod in k8s.CoreV1Api(api).list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT).items:
        v = PodView.of(pod)
        if not v.ready and v.phase != "Succeeded":
            out.append(f"pod {v.where} is not ready: {v.phase}; {v.why}")
    return out

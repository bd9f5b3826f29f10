"""LoadBalancer addresses as MetalLB hands them out: pools, Services, who holds what, and why not.

Everything here reads the API (MetalLB's IPAddressPool status counts, the Service's
status.loadBalancer, the controller's events on the Service, the speakers' ServiceL2Status)
and returns frozen evidence; the suites decide. A Service that gets no address is explained by
what MetalLB itself said about it (`AllocationFailed: ... no available IPs`), and one whose
address does not answer by which speaker announces it, if any.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from kubernetes import client as k8s

GROUP, VERSION = "metallb.io", "v1beta1"
POOL_ANNOTATION = "metallb.universe.tf/address-pool"
ADDRESSES_ANNOTATION = "metallb.universe.tf/loadBalancerIPs"
REQUEST_TIMEOUT = (5, 30)


# --- address ranges ----------------------------------------------------------------------------

def span(text: str) -> tuple[ipaddress._BaseAddress, ipaddress._BaseAddress]:
    """The first and last address of a MetalLB range (`a-b`, a CIDR, or one address)."""
    first, sep, last = text.partition("-")
    if sep:
        return ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
    net = ipaddress.ip_network(text.strip(), strict=False)
    return net[0], net[-1]


def same_ranges(a: Iterable[str], b: Iterable[str]) -> bool:
    """Two lists of ranges name the same addresses range by range, however each is spelled."""
    def key(text: str) -> tuple[int, int, int]:
        lo, hi = span(text)
        return lo.version, int(lo), int(hi)

    return sorted(map(key, a)) == sorted(map(key, b))


def family(address: str) -> str:
    return f"IPv{ipaddress.ip_address(address).version}"


def within(address: str, ranges: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(lo.version == ip.version and lo <= ip <= hi for lo, hi in map(span, ranges))


SPARE_PURPOSES = ("exhaust", "release")


@dataclass(frozen=True)
class TestRanges:
    """The profile's test ranges cut up: a pool shared by the run's LoadBalancer promises, and
    for each purpose in SPARE_PURPOSES one address of each family, from the top of the range, for
    a single-address pool a promise fills or empties on purpose without starving the others
    (MetalLB refuses overlapping pools, so the pieces must be disjoint)."""

    shared: tuple[str, ...]
    spare: dict[str, tuple[str, ...]]

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(f"IPv{span(r)[0].version}" for r in self.shared)


def split_test_ranges(ranges: Iterable[str]) -> TestRanges:
    shared: list[str] = []
    spare: dict[str, list[str]] = {p: [] for p in SPARE_PURPOSES}
    for text in ranges:
        lo, hi = span(text)
        if int(hi) - int(lo) < len(SPARE_PURPOSES):
            raise ValueError(f"{text!r} holds {int(hi) - int(lo) + 1} address(es); a run needs at least "
                             f"{len(SPARE_PURPOSES) + 1} of each family")
        top = hi - len(SPARE_PURPOSES)
        shared.append(f"{lo}-{top}")
        for i, purpose in enumerate(SPARE_PURPOSES, 1):
            spare[purpose].append(f"{top + i}-{top + i}")
    return TestRanges(tuple(shared), {p: tuple(v) for p, v in spare.items()})


# --- pools -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pool:
    """One IPAddressPool as MetalLB reports it."""

    namespace: str
    name: str
    found: bool
    addresses: tuple[str, ...] = ()
    auto_assign: bool = True
    assigned: tuple[int | None, int | None] = (None, None)  # IPv4, IPv6, from the pool's status
    available: tuple[int | None, int | None] = (None, None)

    @property
    def usage(self) -> str:
        parts = [f"{fam}: {used} assigned, {free} available"
                 for fam, used, free in zip(("IPv4", "IPv6"), self.assigned, self.available)
                 if used is not None and (used or free)]
        return "; ".join(parts) or "no usage reported"

    def __str__(self) -> str:
        if not self.found:
            return f"IPAddressPool {self.namespace}/{self.name}: not found"
        return (f"IPAddressPool {self.namespace}/{self.name}: {list(self.addresses)}, autoAssign "
                f"{str(self.auto_assign).lower()}, {self.usage}")


def _pool(ns: str, obj: dict) -> Pool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return Pool(ns, obj["metadata"]["name"], True, tuple(spec.get("addresses") or ()),
                spec.get("autoAssign", True) is not False,
                (status.get("assignedIPv4"), status.get("assignedIPv6")),
                (status.get("availableIPv4"), status.get("availableIPv6")))


def pools(api: k8s.ApiClient, namespace: str) -> dict[str, Pool]:
    items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "ipaddresspools", _request_timeout=REQUEST_TIMEOUT)["items"]
    return {o["metadata"]["name"]: _pool(namespace, o) for o in items}


def pool(api: k8s.ApiClient, namespace: str, name: str) -> Pool:
    try:
        obj = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "ipaddresspools", name, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return Pool(namespace, name, False)
        raise
    return _pool(namespace, obj)


def pool_documents(name: str, ranges: Iterable[str]) -> list[dict]:
    """A pool of the run's own that no Service gets unless it names it, and its L2 announcement."""
    return [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "IPAddressPool", "metadata": {"name": name},
             "spec": {"addresses": list(ranges), "autoAssign": False}},
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "L2Advertisement", "metadata": {"name": name},
             "spec": {"ipAddressPools": [name]}}]


# --- Services ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadBalancer:
    """A LoadBalancer Service as it stands: its addresses and what MetalLB said about it."""

    namespace: str
    name: str
    found: bool
    families: tuple[str, ...] = ()  # spec.ipFamilies
    addresses: tuple[str, ...] = ()  # status.loadBalancer.ingress
    events: tuple[str, ...] = ()  # "Reason: message" of MetalLB's events on it, oldest first
    announced_by: tuple[str, ...] = ()  # nodes whose speaker announces it (ServiceL2Status)

    def address_of(self, fam: str) -> str | None:
        return next((a for a in self.addresses if family(a) == fam), None)

    @property
    def complete(self) -> bool:
        """An address in every family the Service asks for."""
        return bool(self.families) and all(self.address_of(f) for f in self.families)

    @property
    def pending_reason(self) -> str | None:
        """MetalLB's last word on why the Service has no address, if it said anything."""
        failed = [e for e in self.events if e.startswith("AllocationFailed")]
        return failed[-1] if failed else None

    def __str__(self) -> str:
        if not self.found:
            return f"Service {self.namespace}/{self.name}: not found"
        said = "; ".join(self.events[-3:]) or "no events from MetalLB"
        announced = ", ".join(self.announced_by) or "no speaker"
        return (f"Service {self.namespace}/{self.name} ({'/'.join(self.families)}): addresses "
                f"{list(self.addresses) or 'none'}; announced by {announced}; MetalLB said: {said}")


def service(api: k8s.ApiClient, namespace: str, name: str, metallb_namespace: str | None = None) -> LoadBalancer:
    """The Service's addresses and MetalLB's events on it; with `metallb_namespace`, also which
    speakers announce it."""
    core = k8s.CoreV1Api(api)
    try:
        svc = core.read_namespaced_service(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return LoadBalancer(namespace, name, False)
        raise
    ingress = (svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None) or []
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Service,involvedObject.name={name}",
        _request_timeout=REQUEST_TIMEOUT).items
    events.sort(key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp).isoformat())
    said = tuple(f"{e.reason}: {e.message}" for e in events
                 if (e.source and e.source.component or e.reporting_component or "").startswith("metallb")
                 or e.reason in ("AllocationFailed", "IPAllocated", "nodeAssigned", "ClearAssignment"))
    announced = announcers(api, metallb_namespace, namespace, name) if metallb_namespace else ()
    return LoadBalancer(namespace, name, True, tuple(svc.spec.ip_families or ()),
                        tuple(i.ip for i in ingress if i.ip), said, announced)


def announcers(api: k8s.ApiClient, metallb_namespace: str, namespace: str, name: str) -> tuple[str, ...]:
    """Nodes whose speaker announces the Service in L2 mode (their ServiceL2Status objects)."""
    try:
        items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, metallb_namespace, "servicel2statuses", _request_timeout=REQUEST_TIMEOUT)["items"]
    except k8s.ApiException as exc:
        if exc.status in (403, 404):
            return ()
        raise
    return tuple(sorted((o.get("status") or {}).get("node", "?") for o in items
                        if (o.get("status") or {}).get("serviceName") == name
                        and (o.get("status") or {}).get("serviceNamespace") == namespace))


def holders(api: k8s.ApiClient, address: str) -> tuple[str, ...]:
    """Every Service (namespace/name) whose load balancer status holds `address`."""
    wanted = ipaddress.ip_address(address)
    found = []
    for svc in k8s.CoreV1Api(api).list_service_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items:
        ingress = (svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None) or []
        if any(i.ip and ipaddress.ip_address(i.ip) == wanted for i in ingress):
            found.append(f"{svc.metadata.namespace}/{svc.metadata.name}")
    return tuple(sorted(found))


@dataclass(frozen=True)
class Speakers:
    """The speaker DaemonSet: without a ready speaker on a node, nothing answers ARP for its addresses."""

    namespace: str
    found: bool
    desired: int = 0
    ready: int = 0

    def __str__(self) -> str:
        if not self.found:
            return f"DaemonSet {self.namespace}/speaker: not found"
        return f"DaemonSet {self.namespace}/speaker: {self.ready} of {self.desired} speakers ready"


def speakers(api: k8s.ApiClient, namespace: str, name: str = "speaker") -> Speakers:
    try:
        ds = k8s.AppsV1Api(api).read_namespaced_daemon_set(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return Speakers(namespace, False)
        raise
    return Speakers(namespace, True, ds.status.desired_number_scheduled or 0, ds.status.number_ready or 0)



def unanswered_because(svc: LoadBalancer, speakers_now: Speakers) -> str:
    """The first thing to look at when a LoadBalancer address does not answer from outside."""
    where = f"Service {svc.namespace}/{svc.name}"
    if not speakers_now.found or speakers_now.ready == 0:
        return f"{speakers_now}: nothing announces {list(svc.addresses)} of {where} on the LAN"
    if not svc.announced_by:
        return f"no speaker announces {list(svc.addresses)} of {where} ({speakers_now})"
    return f"{where} is announced by {', '.join(svc.announced_by)} ({speakers_now}), yet does not answer as it should"

"""Cluster DNS: names a pod relies on resolve, through glibc, musl and Go, fast enough.

Lookups run from the shared probe pod on every schedulable node, so a node whose pods cannot
reach DNS fails by name. Expected answers come from the API (the Service's ClusterIPs, the
ready pods' addresses), never from constants. Each test compares {probe pod: answer} with
{probe pod: expected answer}, so a failure shows every node's actual answer beside the wanted one.
"""
from __future__ import annotations

import pytest

from conformance.probes import dns
from conformance.probes.workloads import ECHO_SELECTOR

ADDRESS_RESOLVERS = dns.RESOLVERS  # glibc (getent), musl, go
LATENCY_LOOKUPS = 60


def _ask(probes, lookup) -> dict[str, dns.Lookup]:
    """Run `lookup(client)` from the probe pod on every expected node; a node not asked fails by name."""
    found = {c: lookup(c) for c in probes.ready_clients()}
    covered = probes.coverage(found, "probe")
    assert covered.gaps == (), f"{covered}\n{_evidence(found)}"
    return {c.where: lk for c, lk in found.items()}


def _addresses(found: dict[str, dns.Lookup]) -> dict[str, tuple[str, ...]]:
    return {where: tuple(sorted(lk.addresses)) for where, lk in found.items()}


def _evidence(found: dict[str, dns.Lookup]) -> str:
    return "\n".join(str(lk) for lk in found.values())


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/service-fqdn")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_pod_resolves_service_fqdn(kube, probes, profile, resolver):
    """A pod MUST resolve a Service's fully qualified name to its ClusterIP.

    Asked for the IPv4 address through each resolver, because each builds its queries its own way.
    """
    name, want = probes.fqdn("echo", profile.cluster.domain), probes.ipv4("echo")
    found = _ask(probes, lambda c: dns.address_lookup(kube, c, resolver, name, "4"))
    assert _addresses(found) == {w: (want,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/short-name-search-path")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_pod_resolves_short_service_name_through_search_path(kube, probes, resolver):
    """A pod MUST resolve a Service's short name, and `<service>.<namespace>`, through its search path.

    The probe pods live in the Service's namespace, so the bare name is the first search-list hit.
    """
    want = probes.ipv4("echo")
    for name in ("echo", f"echo.{probes.namespace}"):
        found = _ask(probes, lambda c, name=name: dns.address_lookup(kube, c, resolver, name, "4"))
        assert _addresses(found) == {w: (want,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/headless-pod-records")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_headless_service_resolves_to_each_ready_pod(kube, probes, profile, resolver):
    """A headless Service's name MUST resolve to each ready pod's address, and each pod's own record to it.

    A pod's own record is `<dashed-ip>.<service>.<namespace>.svc.<domain>`; the per-pod names are the ones the cluster DNS publishes for endpoints without a hostname.
    """
    domain = profile.cluster.domain
    ready = sorted(ip for s in probes.servers if s.ready for ip in s.ips if ":" not in ip)
    assert ready, f"no ready echo pod ({ECHO_SELECTOR}) in {probes.namespace}: {probes.servers}"
    name = probes.fqdn("echo-headless", domain)
    found = _ask(probes, lambda c: dns.address_lookup(kube, c, resolver, name, "4"))
    assert _addresses(found) == {w: tuple(ready) for w in found}, _evidence(found)
    for ip in ready:
        record = f"{ip.replace('.', '-')}.{name}"
        found = _ask(probes, lambda c, record=record: dns.address_lookup(kube, c, resolver, record, "4"))
        assert _addresses(found) == {w: (ip,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/srv-named-port")
@pytest.mark.parametrize("resolver", ["glibc", "go"])
def test_named_service_port_has_srv_record(kube, probes, profile, resolver):
    """A Service's named port MUST have an SRV record `_<port>._<proto>.<service>` giving port and name.

    glibc's getaddrinfo cannot ask for SRV, so glibc's side is `dig`; musl has no SRV lookup at all.
    """
    fqdn = probes.fqdn("echo", profile.cluster.domain)
    name = f"_http._tcp.{fqdn}"
    ask = (lambda c: dns.dig(kube, c, name, "SRV")) if resolver == "glibc" else (lambda c: dns.go(kube, c, name, "SRV")[0])
    found = _ask(probes, ask)
    got = {w: tuple((r.split()[2], r.split()[3].rstrip(".")) for r in lk.records) for w, lk in found.items()}
    assert got == {w: (("8080", fqdn),) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/pod-a-record")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_pod_a_record_resolves_to_pod_ip(kube, probes, profile, resolver):
    """A pod's A record `<dashed-ip>.<namespace>.pod.<domain>` MUST resolve to that pod's address.

    An address no pod of the namespace holds is asked too, and must get what the profile says
    the cluster does (components.dns.pod_records): `insecure` answers any dashed address,
    `verified` answers it with no such name, `disabled` answers no pod record at all.
    """
    mode = profile.components.dns.pod_records
    target = next((s for s in probes.servers if s.ready), None)
    assert target is not None, f"no ready echo pod in {probes.namespace}"
    ip = next(ip for ip in target.ips if ":" not in ip)
    stray = dns.unused_address(ip, (a for p in probes.clients + probes.servers for a in p.ips))
    for address, held in ((ip, True), (stray, False)):
        name = dns.pod_record(address, probes.namespace, profile.cluster.domain)
        found = _ask(probes, lambda c, name=name: dns.address_lookup(kube, c, resolver, name, "4"))
        want = dns.pod_record_answer(mode, address, held)
        assert {w: dns.outcome(lk) for w, lk in found.items()} == {w: want for w in found}, \
            f"pod record of {address} ({'held by ' + target.where if held else 'held by no pod'}), " \
            f"pod_records: {mode}\n{_evidence(found)}"


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/aaaa-dual-stack")
@pytest.mark.covers("cluster/dual-stack")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_dual_stack_service_has_aaaa_record(kube, probes, profile, resolver):
    """Where the platform is dual-stack, a Service's name MUST resolve to its IPv6 ClusterIP (AAAA)."""
    if not profile.cluster.dual_stack:
        pytest.skip(f"profile {profile.name} does not claim dual-stack (cluster.dual_stack: false)")
    want = probes.ipv6("echo")
    assert want, f"Service {probes.namespace}/echo (PreferDualStack) got no IPv6 ClusterIP: " \
                 f"{probes.services['echo'].cluster_ips}"
    name = probes.fqdn("echo", profile.cluster.domain)
    found = _ask(probes, lambda c: dns.address_lookup(kube, c, resolver, name, "6"))
    assert _addresses(found) == {w: (want,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/externalname-cname")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_externalname_service_answers_with_cname(kube, probes, profile, resolver):
    """An ExternalName Service's name MUST answer with a CNAME to its external name.

    The alias points at another Service of the cluster, so the promise depends on no upstream
    resolver. glibc asks with dig, musl shows the CNAME target as getaddrinfo's canonical name,
    Go asks for the CNAME itself.
    """
    domain = profile.cluster.domain
    name, target = probes.fqdn("alias", domain), probes.fqdn("echo", domain)
    if resolver == "glibc":
        found = _ask(probes, lambda c: dns.dig(kube, c, name, "CNAME"))
        got = {w: tuple(r.rstrip(".") for r in lk.records) for w, lk in found.items()}
    else:
        ask = (lambda c: dns.musl(kube, c, name, "4")[0]) if resolver == "musl" else (
            lambda c: dns.go(kube, c, name, "CNAME")[0])
        found = _ask(probes, ask)
        got = {w: ((lk.canonical or "").rstrip("."),) for w, lk in found.items()}
    assert got == {w: (target,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/nxdomain")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_missing_name_is_nxdomain(kube, probes, profile, resolver):
    """A name that does not exist in the cluster domain MUST get NXDOMAIN, not an address or a timeout.

    glibc's side is dig, because getaddrinfo folds NXDOMAIN and "no data" into one error.
    """
    name = f"no-such-service.{probes.namespace}.svc.{profile.cluster.domain}"
    if resolver == "glibc":
        found = _ask(probes, lambda c: dns.dig(kube, c, name, "A"))
    elif resolver == "musl":
        found = _ask(probes, lambda c: dns.musl(kube, c, name, "4")[0])
    else:
        found = _ask(probes, lambda c: dns.go(kube, c, name, "A")[0])
    assert {w: lk.status for w, lk in found.items()} == {w: "nxdomain" for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/ptr-service-ip")
@pytest.mark.parametrize("resolver", ["glibc", "go"])
def test_service_ip_has_ptr_record(kube, probes, profile, resolver):
    """A Service's ClusterIP MUST have a PTR record naming the Service."""
    ip, fqdn = probes.ipv4("echo"), probes.fqdn("echo", profile.cluster.domain)
    ask = (lambda c: dns.dig(kube, c, ip, "PTR")) if resolver == "glibc" else (lambda c: dns.go(kube, c, ip, "PTR")[0])
    found = _ask(probes, ask)
    got = {w: tuple(r.rstrip(".") for r in lk.records) for w, lk in found.items()}
    assert got == {w: (fqdn,) for w in found}, _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/resolve/upstream-forwarder")
@pytest.mark.covers("dns/upstream-forwarder")
@pytest.mark.parametrize("resolver", ADDRESS_RESOLVERS)
def test_external_name_resolves_through_upstream_forwarder(kube, probes, profile, resolver):
    """A name outside the cluster MUST resolve through the cluster DNS's upstream forwarder.

    The name comes from the profile (components.dns.external_name), because only the platform
    knows a name its upstream answers; the absolute name (trailing dot) skips the search list.
    """
    external = profile.components.dns.external_name
    if not external:
        pytest.skip(f"profile {profile.name} names no external name its upstream answers: set "
                    f"components.dns.external_name, e.g. --set components.dns.external_name=www.example.org")
    name = external.rstrip(".") + "."
    found = _ask(probes, lambda c: dns.address_lookup(kube, c, resolver, name, "4"))
    assert {w: (lk.status, bool(lk.addresses)) for w, lk in found.items()} == {w: ("ok", True) for w in found}, \
        _evidence(found)


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/latency/p95-within-budget")
@pytest.mark.parametrize("resolver", ["musl", "go"])
def test_lookup_latency_p95_within_budget(kube, probes, profile, record_measurement, resolver):
    """The 95th percentile of uncached lookups of a Service name MUST stay within budgets.dns_p95_ms.

    Every lookup must also be answered.

    Sixty lookups per probe pod with resolvers that do not cache, timed inside the pod so that
    the exec channel's own delay does not count; the slowest node's p95 is held to the budget.
    The pods are asked at once, and a pod whose DNS server answers nothing stops early.
    """
    name = probes.fqdn("echo", profile.cluster.domain) + "."
    assert probes.missing() == [], "a schedulable node has no ready probe pod to measure from"
    samples = dns.latencies(kube, probes.ready_clients(), resolver, name, LATENCY_LOOKUPS)
    worst = max(samples, key=lambda s: s.p95)
    record_measurement(f"dns p50 ({resolver})", worst.p50, "ms")
    p95 = record_measurement(f"dns p95 ({resolver})", worst.p95, "ms", budget="dns_p95_ms")
    evidence = "\n".join(str(s) for s in samples)
    assert {s.where: s.failures for s in samples} == {s.where: () for s in samples}, evidence
    assert p95.value <= p95.budget, f"{p95}\n{evidence}"


# --- read-only: the DNS server is the one the profile names ----------------------------------

@pytest.mark.dns
@pytest.mark.promise("dns/server/service-matches-profile")
def test_dns_service_has_the_name_and_ip_the_profile_names(kube, profile):
    """The cluster DNS Service MUST have the profile's name and ClusterIP, serve port 53 and have endpoints.

    Port 53 over UDP and TCP both, since large answers fall back to TCP.
    """
    claim = profile.components.dns
    found = dns.server(kube, claim.namespace, claim.service, claim.deployment)
    assert found.service_found, f"Service {claim.namespace}/{claim.service} does not exist"
    dns_ports = sorted(p for p in found.ports if p.startswith("53/"))
    assert (claim.ip in found.cluster_ips, dns_ports) == (True, ["53/TCP", "53/UDP"]), \
        f"Service {claim.namespace}/{claim.service}: clusterIPs {list(found.cluster_ips)} (profile: {claim.ip}), " \
        f"ports {list(found.ports)}"
    assert found.ready_endpoints, f"Service {claim.namespace}/{claim.service} has no ready endpoints"


@pytest.mark.dns
@pytest.mark.promise("dns/server/replicas-match-profile")
def test_dns_deployment_runs_the_replicas_the_profile_names(kube, profile):
    """The cluster DNS Deployment MUST run the number of replicas the profile names, all of them ready."""
    claim = profile.components.dns
    found = dns.server(kube, claim.namespace, claim.service, claim.deployment)
    name = f"Deployment {claim.namespace}/{claim.deployment}"
    assert found.deployment_found, f"{name} does not exist"
    assert (found.desired, found.ready) == (claim.replicas, claim.replicas), \
        f"{name}: {found.ready} of {found.desired} replicas ready; the profile names {claim.replicas}"

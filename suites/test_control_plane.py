"""Control plane: the API server is healthy and reachable, nodes are ready, versions and
certificates are within bounds, and kube-proxy runs or not as the profile says.

Every check here only reads, so all of them run in read-only mode too.
"""
from __future__ import annotations

import pytest

from conformance.probes import control_plane as cp
from conformance.probes import coverage


def _covered(expected: coverage.Expected, asked) -> None:
    """Every node the promise must be proven from was looked at; a node left out fails by name."""
    covered = expected.coverage(asked)
    assert covered.gaps == (), str(covered)


def _failing(health: cp.Health) -> str:
    named = "; ".join(f"{c.name}: {c.detail}" for c in health.failing)
    return f"{health.endpoint}?verbose answered HTTP {health.http_status}; failing checks: {named or '-'}" + (
        f"; error: {health.error}" if health.error else "") + f"\n{health.raw}"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/health/livez")
def test_api_server_livez_passes_every_check(kube):
    """The API server's /livez MUST pass every check; each failing check is named."""
    health = cp.health(kube, "/livez")
    assert ([c.name for c in health.failing], health.http_status) == ([], 200), _failing(health)


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/health/readyz")
def test_api_server_readyz_passes_every_check(kube):
    """The API server's /readyz MUST pass every check (etcd, informers, post-start hooks).

    Read with ?verbose, so that a failure names each failing check.
    """
    health = cp.health(kube, "/readyz")
    assert ([c.name for c in health.failing], health.http_status) == ([], 200), _failing(health)


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/endpoint/answers")
def test_api_endpoint_resolves_and_answers(kube, profile):
    """The profile's API endpoint MUST resolve and answer as the API server, with a certificate for that name.

    The endpoint is the profile's (in production the kube-vip address), else the kubeconfig's;
    the request uses the suite's own CA, so a certificate that does not cover the name fails.
    """
    url = profile.cluster.api_endpoint or kube.configuration.host
    found = cp.endpoint(kube, url)
    assert found.addresses, f"{found.host} does not resolve: {found.error}"
    assert (found.error, found.version is not None) == (None, True), f"{url} did not answer as the API server: {found}"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/nodes/ready")
def test_every_expected_node_is_ready(kube, profile):
    """Every node the profile names MUST exist and be Ready."""
    found = cp.nodes(kube)
    _covered(coverage.for_facts(profile.cluster.nodes, found, every=False), found)
    got = {name: (found[name].ready if name in found else "missing") for name in profile.cluster.nodes}
    detail = "\n".join(f"{n.name}: Ready={n.ready} ({n.ready_reason})" + "".join(f"; {p}" for p in n.problems)
                       for n in found.values())
    bad = {name: state for name, state in got.items() if state != "True"}
    assert got == {name: "True" for name in profile.cluster.nodes}, f"expected nodes not Ready: {bad}\n{detail}"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/nodes/schedulable")
def test_no_expected_node_is_cordoned(kube, profile):
    """No node the profile names MUST be cordoned: each one accepts new pods."""
    found = cp.nodes(kube)
    _covered(coverage.for_facts(profile.cluster.nodes, found, every=False), found)
    got = {name: found[name].unschedulable if name in found else "missing" for name in profile.cluster.nodes}
    detail = "\n".join(f"{n.name}: unschedulable={n.unschedulable}, taints {list(n.taints)}" for n in found.values())
    bad = {name: state for name, state in got.items() if state is not False}
    assert got == {name: False for name in profile.cluster.nodes}, f"expected nodes cordoned or missing: {bad}\n{detail}"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/nodes/kubelet-skew")
def test_kubelet_versions_within_supported_skew(kube, profile):
    """Every kubelet MUST be at most three minor versions older than the API server and never newer."""
    server = cp.server_version(kube)
    found = cp.nodes(kube)
    _covered(coverage.for_facts(profile.cluster.nodes, found), (n.name for n in found.values() if n.kubelet_version))
    skews = {n.name: (n.kubelet_version, cp.kubelet_skew(server, n.kubelet_version)) for n in found.values()}
    outside = {name: v for name, (v, skew) in skews.items() if not 0 <= skew <= cp.KUBELET_MAX_SKEW}
    assert outside == {}, f"API server {server}; kubelets outside the supported skew: {outside}"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/certificates/api-server")
def test_api_server_certificate_not_close_to_expiry(kube, profile):
    """The API server's serving certificate MUST stay valid for at least budgets.min_certificate_days."""
    url = profile.cluster.api_endpoint or kube.configuration.host
    found = cp.endpoint(kube, url)
    served = cp.served_certificate(found.host, found.port)
    assert served.error is None, str(served)
    assert served.days_left() >= profile.budgets.min_certificate_days, \
        f"{served}; budget {profile.budgets.min_certificate_days:g} days (budgets.min_certificate_days)"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/certificates/kubelet")
def test_kubelet_certificates_not_close_to_expiry(kube, profile):
    """Every kubelet's serving certificate MUST stay valid for at least budgets.min_certificate_days.

    Read by a TLS handshake with each kubelet at its node's first InternalIP, as the API server
    itself connects for logs, exec and port-forward.
    """
    budget = profile.budgets.min_certificate_days
    found = cp.nodes(kube)
    _covered(coverage.for_facts(profile.cluster.nodes, found), found)
    served = {n.name: cp.served_certificate(n.internal_ips[0], n.kubelet_port) if n.internal_ips else None
              for n in found.values()}
    short = {name: str(s) if s else "no InternalIP" for name, s in served.items()
             if s is None or s.error or s.days_left() < budget}
    assert short == {}, f"kubelet certificates with fewer than {budget:g} days left or unreadable"


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/kube-proxy/absent-where-replaced")
@pytest.mark.covers("cluster/kube-proxy-replacement")
def test_no_kube_proxy_daemonset_where_cni_replaces_it(kube, profile):
    """Where the profile says the CNI replaces kube-proxy, no kube-proxy DaemonSet or pod MUST run.

    Two Service proxies on a node fight over the same rules; a leftover kube-proxy after a move to
    Cilium's replacement is a known way to break Services.
    """
    if profile.cluster.kube_proxy != "replaced":
        pytest.skip(f"profile {profile.name} expects kube-proxy to run (cluster.kube_proxy: "
                    f"{profile.cluster.kube_proxy}); Service routing is covered by networking/service/cluster-ip")
    found = cp.kube_proxy(kube)
    assert (found.daemonsets, found.pods) == ((), ()), f"kube-proxy still runs: {found}"

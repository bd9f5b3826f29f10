"""Ingress through the controller the profile names: host and path routing, TLS by SNI, redirects.

Requests go from the outside host to the controller's LoadBalancer addresses, one family at a
time, with the Host header and SNI a browser would send: no DNS is involved, so only the
controller decides who answers. The test's Ingresses serve HTTPS with a certificate the test
makes itself, so routing is proven without any issuer. The controller's defaults (its redirect
annotation, its answer for an unknown host) come from its adapter in conformance.probes.ingress.
Every failure shows the controller's workloads and Service as they stand.
"""
from __future__ import annotations

import base64

import pytest
from kubernetes import client as k8s

from conformance import manifests
from conformance.probes import ingress as ing
from conformance.probes import outside_http
from conformance.probes.workloads import render
from conformance.waiting import WaitTimeout, wait_for

UNKNOWN_HOST = "no-such-host.invalid"


def _claim(profile):
    claim = profile.components.ingress
    if not (claim and claim.claimed):
        pytest.skip(f"profile {profile.name} does not claim ingress (components.ingress.claimed)")
    return claim


def _controller(kube, profile) -> ing.Controller:
    claim = _claim(profile)
    return ing.controller(kube, claim.namespace, claim.service, claim.ingress_class)


@pytest.fixture(scope="module")
def front(kube, profile) -> ing.Controller:
    """The controller as the module starts: its LoadBalancer addresses are where requests go."""
    claim = _claim(profile)
    if not claim.service:
        pytest.skip(f"profile {profile.name} names no controller Service (components.ingress.service)")
    found = _controller(kube, profile)
    assert found.addresses, f"the controller's Service has no LoadBalancer address: {found}"
    return found


def _ask(profile, address: str, host: str, path: str = "/", tls: bool = False) -> outside_http.Exchange:
    return outside_http.request_from(profile.outside.origin, profile.outside.netns, address, host, path, tls)


def _until(kube, profile, front, what: str, ask, until) -> dict:
    """Ask every address of the controller until `until` holds for all, or ingress_routed runs out;
    the last answers either way (the assertion judges them)."""
    def every() -> dict:
        return {a: ask(a) for a in front.addresses}

    try:
        return wait_for(what, every, until=lambda got: all(until(x) for x in got.values()),
                        timeout="ingress_routed", interval=1)
    except WaitTimeout as exc:
        return exc.last_state if isinstance(exc.last_state, dict) else every()


def _evidence(kube, profile, answers: dict) -> str:
    """The controller's trouble first (a stopped controller or proxy), then every answer."""
    found = _controller(kube, profile)
    return "\n".join([found.trouble or "the controller looks healthy, yet answered as below",
                      *map(str, answers.values()), f"controller: {found}"])


@pytest.fixture(scope="module")
def routes(kube, profile, edge_backends, front):
    """The test's Ingresses (see manifests/probes/ingress-routes.yaml), with their TLS Secret."""
    claim = _claim(profile)
    ns = edge_backends.namespace
    host, redirect_host = f"app.{ns}.pcf.test", f"secure.{ns}.pcf.test"
    cert = ing.self_signed((host, redirect_host))
    k8s.CoreV1Api(kube).create_namespaced_secret(ns, {
        "metadata": {"name": "routes-tls"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
                 "tls.key": base64.b64encode(cert.key_pem.encode()).decode()}})
    docs = render("ingress-routes", profile.images, NAME="routes", CLASS=claim.ingress_class, HOST=host,
                  REDIRECT_HOST=redirect_host, SECRET="routes-tls")
    docs[1]["metadata"]["annotations"] = dict(ing.adapter(claim.controller).redirect_annotations)
    manifests.apply(docs, kube, namespace=ns)
    return {"host": host, "redirect_host": redirect_host, "cert": cert, "namespace": ns}


@pytest.mark.ingress
@pytest.mark.writes
@pytest.mark.promise("ingress/route/host-and-sni")
def test_host_routes_to_its_backend_over_http_and_https(kube, profile, front, routes):
    """An Ingress of the profile's class MUST route its host to its backend from the outside, over HTTP by Host and over HTTPS by SNI with its own certificate, in each family.

    Each of the controller's LoadBalancer addresses is asked, so a family the Service serves but
    the proxy does not listen on fails by its address.
    """
    host, cert = routes["host"], routes["cert"]
    plain = _until(kube, profile, front, f"http://{host}/ to reach echo-a", lambda a: _ask(profile, a, host),
                   lambda x: x.status == 200)
    secure = _until(kube, profile, front, f"https://{host}/ to reach echo-a", lambda a: _ask(profile, a, host, tls=True),
                    lambda x: x.status == 200 and x.served_sha256 == cert.sha256)
    got = {a: ((plain[a].status, plain[a].body.strip()), (secure[a].status, secure[a].body.strip(),
                                                          secure[a].served_sha256 == cert.sha256))
           for a in front.addresses}
    want = {a: ((200, "echo-a"), (200, "echo-a", True)) for a in front.addresses}
    assert got == want, _evidence(kube, profile, {**{f"http {a}": x for a, x in plain.items()},
                                                  **{f"https {a}": x for a, x in secure.items()}}) + \
        f"\nthe test's certificate: {list(cert.hosts)}, sha256 {cert.sha256}"


@pytest.mark.ingress
@pytest.mark.writes
@pytest.mark.promise("ingress/route/paths")
def test_path_rules_route_to_their_backends(kube, profile, front, routes):
    """An Ingress's path rules MUST route each path to its backend: the longest Prefix wins, and an Exact path matches only itself."""
    host = routes["host"]
    cases = {"/": "echo-a", "/b": "echo-b", "/b/deeper": "echo-b", "/exact": "echo-b", "/exact/not": "echo-a",
             "/bee": "echo-a"}
    address = front.addresses[0]
    answers = {p: _until(kube, profile, front, f"http://{host}{p} to be routed", lambda a, p=p: _ask(profile, a, host, p),
                         lambda x: x.status == 200)[address] for p in cases}
    got = {p: (x.status, x.body.strip()) for p, x in answers.items()}
    assert got == {p: (200, b) for p, b in cases.items()}, _evidence(kube, profile, answers)


@pytest.mark.ingress
@pytest.mark.writes
@pytest.mark.promise("ingress/redirect/http-to-https")
def test_http_redirects_to_https_when_asked(kube, profile, front, routes):
    """An Ingress with the controller's HTTPS redirect MUST answer plain HTTP with a redirect to the same host and path over HTTPS, in each family, and serve HTTPS."""
    claim = _claim(profile)
    adapter = ing.adapter(claim.controller)
    host = routes["redirect_host"]
    plain = _until(kube, profile, front, f"http://{host}/somewhere to redirect", lambda a: _ask(profile, a, host, "/somewhere"),
                   lambda x: x.status in adapter.redirect_status)
    secure = _until(kube, profile, front, f"https://{host}/ to answer", lambda a: _ask(profile, a, host, tls=True),
                    lambda x: x.status == 200)
    got = {a: (plain[a].status in adapter.redirect_status, plain[a].location, secure[a].status) for a in front.addresses}
    want = {a: (True, f"https://{host}/somewhere", 200) for a in front.addresses}
    assert got == want, _evidence(kube, profile, {**{f"http {a}": x for a, x in plain.items()},
                                                  **{f"https {a}": x for a, x in secure.items()}})


# --- checks that only read (they send requests, and write nothing) ----------------------------

@pytest.mark.ingress
@pytest.mark.promise("ingress/controller/serving")
def test_controller_serves_its_class_behind_a_load_balancer(kube, profile):
    """The profile's IngressClass MUST belong to the profile's controller, whose workloads are all ready and whose Service has a LoadBalancer address."""
    claim = _claim(profile)
    found = _controller(kube, profile)
    adapter = ing.adapter(claim.controller)
    got = (found.class_controller, [str(w) for w in found.unready], found.service_type if claim.service else None,
           bool(found.addresses) if claim.service else None)
    want = (adapter.controller, [], "LoadBalancer" if claim.service else None, True if claim.service else None)
    assert got == want, f"{found.trouble}\n{found}"


@pytest.mark.ingress
@pytest.mark.promise("ingress/route/unknown-host-default")
def test_unknown_host_gets_the_controller_default_answer(kube, profile, front):
    """A host no Ingress names MUST get the controller's default answer from every LoadBalancer address, not a backend's."""
    expected = ing.adapter(_claim(profile).controller).unknown_host_status
    answers = {a: _ask(profile, a, UNKNOWN_HOST) for a in front.addresses}
    got = {a: x.status for a, x in answers.items()}
    assert got == {a: expected for a in front.addresses}, _evidence(kube, profile, answers)


@pytest.mark.ingress
@pytest.mark.promise("ingress/redirect/declared-hosts")
def test_declared_host_redirects_answer_as_declared(kube, profile, front):
    """Each host redirect the profile declares MUST answer, from every LoadBalancer address, with a redirect to its target host over HTTPS."""
    claim = _claim(profile)
    if not claim.host_redirects:
        pytest.skip(f"profile {profile.name} declares no host redirect (components.ingress.host_redirects)")
    answers = {(r.from_host, a): _ask(profile, a, r.from_host, "/") for r in claim.host_redirects for a in front.addresses}
    got = {k: (x.status in (301, 302, 307, 308), _location_host(x.location)) for k, x in answers.items()}
    want = {(r.from_host, a): (True, f"https://{r.to_host}") for r in claim.host_redirects for a in front.addresses}
    assert got == want, _evidence(kube, profile, {f"{h} via {a}": x for (h, a), x in answers.items()})


def _location_host(location: str | None) -> str | None:
    """`https://host` of a Location, its path dropped (a redirect may keep or drop the path)."""
    if not location:
        return None
    scheme, _, rest = location.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"

"""The TLS read-only checks pass on healthy production-like objects and name each broken one.

Seeded with the admin identity in a namespace of this test, and computed by the real programs:
a CA issuer (self-signed root) with a healthy 90-day Certificate and one whose one-hour duration
leaves it close to expiry; an ACME Certificate from pebble served by two Ingresses, one for its
own host and one for a host it does not name. A profile copied from `local` claims cert-manager,
and the suites run read-only as the reader identity, as they would against production. The
seeded objects go in `finally`.
"""
from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import manifests, run as runs, waiting
from conformance.cluster import network
from conformance.probes import certificates as certs, tls
from tests.integration.core_runs import run_suites
from tiers import needs
from tinysuite import derived_profile

pytestmark = needs("cert-manager", "cert-manager-issuers")
SEEDED_S = 240.0  # an ACME issuance through DNS-01 takes about a minute here


def _cert(name: str, dns: str, issuer: str, kind: str, duration: str = "2160h", renew_before: str = "720h",
          is_ca: bool = False) -> dict:
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": name},
            "spec": {"secretName": f"{name}-tls", "dnsNames": [dns], "isCA": is_ca, "commonName": dns,
                     "duration": duration, "renewBefore": renew_before,
                     "issuerRef": {"group": "cert-manager.io", "kind": kind, "name": issuer}}}


def _seed_ca(ns: str, tag: str) -> list[dict]:
    issuer = lambda name, spec: {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",  # noqa: E731
                                 "metadata": {"name": name}, "spec": spec}
    return [issuer("selfsigned", {"selfSigned": {}}),
            _cert("seed-ca", f"seed-ca.{tag}.invalid", "selfsigned", "Issuer", is_ca=True),
            issuer("seed-ca", {"ca": {"secretName": "seed-ca-tls"}}),
            _cert("healthy", f"healthy.{tag}.invalid", "seed-ca", "Issuer"),
            _cert("near-expiry", f"near-expiry.{tag}.invalid", "seed-ca", "Issuer", duration="1h", renew_before="5m")]


def _ingress(name: str, host: str, secret: str, ingress_class: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": ingress_class, "tls": [{"hosts": [host], "secretName": secret}],
                     "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                         "service": {"name": "no-pods", "port": {"number": 80}}}}]}}]}}


# A backend with no pods: the controller routes to it (and answers 503), which is all a TLS host needs.
NO_PODS = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "no-pods"},
           "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}}


@pytest.fixture
def seeded(admin_api):
    core, dyn = k8s.CoreV1Api(admin_api), DynamicClient(admin_api)
    tag = uuid.uuid4().hex[:6]
    ns = f"pcf-seed-tls-{tag}"
    core.create_namespace({"metadata": {"name": ns, "labels": {runs.MANAGED_BY_LABEL: runs.MANAGED_BY}}})
    try:
        yield admin_api, ns, tag
    finally:
        runs.delete_and_wait(dyn, "v1", "Namespace", ns, timeout="namespace_deleted")


def _ready(dyn, ns: str, name: str) -> certs.CertificateState:
    return waiting.wait_for(f"seeded Certificate {ns}/{name} to be Ready",
                            lambda: certs.certificate(dyn, ns, name), until=lambda c: c.ready, timeout=SEEDED_S)


def test_certificate_close_to_expiry_is_named_and_the_healthy_one_is_not(seeded, tmp_path):
    admin_api, ns, tag = seeded
    dyn = DynamicClient(admin_api)
    manifests.apply(_seed_ca(ns, tag), admin_api, namespace=ns)
    for name in ("healthy", "near-expiry"):
        _ready(dyn, ns, name)
    profile = derived_profile(tmp_path / "profile.yaml", components={"cert_manager": {"claimed": True}})
    run = run_suites(["suites/test_tls.py"], tmp_path, mode="read-only", profile=profile, keyword="every_certificate")
    promise = "cert-manager/health/certificates-ready-with-lifetime"
    assert run.outcomes(promise) == {"failed"}, run.output
    named = run.failures(promise)[0]["reason"].split("-- every")[0]
    assert f"{ns}/near-expiry: 0.0" in named and "below 30" in named, named
    assert f"{ns}/healthy" not in named, named


def test_ingress_serving_a_certificate_for_another_host_is_named(seeded, tmp_path):
    admin_api, ns, tag = seeded
    net, dyn = k8s.NetworkingV1Api(admin_api), DynamicClient(admin_api)
    classes = {c.metadata.name for c in net.list_ingress_class().items}
    if "contour" not in classes:
        pytest.skip(f"no IngressClass contour (found {sorted(classes)}): the ingress controller is not installed")
    host = f"pcf-seed{tag}-ok.pcf.test"
    manifests.apply([_cert("served", host, "pebble", "ClusterIssuer")], admin_api, namespace=ns)
    _ready(dyn, ns, "served")
    manifests.apply([NO_PODS, _ingress("matching", host, "served-tls", "contour"),
                     _ingress("mismatched", f"pcf-seed{tag}-other.pcf.test", "served-tls", "contour")],
                    admin_api, namespace=ns)
    waiting.wait_for("both seeded Ingresses to publish an address", lambda: [
        i for i in net.list_namespaced_ingress(ns).items if (i.status.load_balancer.ingress or ())],
        until=lambda found: len(found) == 2, timeout=SEEDED_S)
    address = net.read_namespaced_ingress("matching", ns).status.load_balancer.ingress[0].ip
    waiting.wait_for(f"the controller at {address} to serve the seeded certificate for {host}",
                     lambda: tls.handshake_from("netns", network.OUTSIDE_NETNS, address, host),
                     until=lambda served: bool(served.leaf_pem), timeout=SEEDED_S)
    profile = derived_profile(tmp_path / "profile.yaml", components={"cert_manager": {"claimed": True}})
    run = run_suites(["suites/test_tls.py"], tmp_path, mode="read-only", profile=profile, keyword="ingress_tls_host")
    promise = "cert-manager/health/ingress-hosts-served"
    assert run.outcomes(promise) == {"failed"}, run.output
    named = run.failures(promise)[0]["reason"].split("-- every")[0]
    assert f"Ingress {ns}/mismatched host pcf-seed{tag}-other.pcf.test: served" in named, named
    assert f"Ingress {ns}/matching" not in named, named

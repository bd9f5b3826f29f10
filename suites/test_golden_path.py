"""The golden path: what a user does to publish an application, and what their visitors get.

One test chains the edge: an Ingress of the profile's class with the TLS annotation production's
Ingresses carry, the ACME certificate cert-manager orders for it, the ingress controller's
LoadBalancer address, and a TLS handshake and HTTP answer from the outside host. Each step is
timed, and a failure says which step broke and what it saw there.
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from conformance import manifests
from conformance.probes import certificates as certs
from conformance.probes import tls
from conformance.probes.workloads import ECHO_IMAGE
from conformance.waiting import wait_for
from fixtures.certificates import Ordered, watch_until_ready


def _published_address(net: k8s.NetworkingV1Api, namespace: str, name: str) -> str:
    """The address the controller publishes on the Ingress (its LoadBalancer address)."""
    def look() -> list[str]:
        ing = net.read_namespaced_ingress(name, namespace)
        return [i.ip for i in ((ing.status.load_balancer or k8s.V1IngressLoadBalancerStatus()).ingress or ()) if i.ip]

    found = wait_for(f"Ingress {namespace}/{name} to publish the controller's LoadBalancer address", look,
                     timeout="lb_address")
    return sorted(found, key=lambda a: ":" in a)[0]


@pytest.mark.ingress
@pytest.mark.writes
@pytest.mark.promise("ingress/golden-path/tls-from-outside")
def test_annotated_ingress_serves_https_from_outside(kube, dyn, namespace, profile, acme_issuer, dns_zone,
                                                     outside_writes, roots_file, record_measurement):
    """An Ingress with the cert-manager annotation MUST get an ACME certificate and answer HTTPS from the
    outside host at the controller's LoadBalancer address, with a certificate for its host that chains to
    the issuer's roots, and the application's own answer.

    Steps are timed from the Ingress's creation: address published, certificate Ready, first
    verified HTTPS answer.
    """
    if not (profile.components.cert_manager and profile.components.cert_manager.claimed):
        pytest.skip(f"profile {profile.name} does not claim cert_manager, so no Ingress gets a certificate")
    host = outside_writes.name("acme", "golden")
    name = host.split(".", 1)[0][:52].rstrip("-")
    outside_writes.create(dns_zone, host, lambda: None)  # the host's records go with the run
    docs = certs.render("web", NAME=name, HOST=host,
                        ANNOTATIONS=f"{{cert-manager.io/cluster-issuer: {acme_issuer}}}",
                        INGRESS_CLASS=profile.components.ingress.ingress_class,
                        ECHO_IMAGE=profile.images.image(ECHO_IMAGE))
    started = time.monotonic()
    outside_writes.write("acme", host, lambda: manifests.apply(docs, kube, namespace=namespace), "order")

    address = _published_address(k8s.NetworkingV1Api(kube), namespace, name)
    record_measurement("golden path: LoadBalancer address on the Ingress", time.monotonic() - started, "s")
    outside_writes.write("dns", host, lambda: dns_zone.set_address(host, address))

    # The ingress shim names the Certificate after the TLS Secret.
    ordered = Ordered(namespace, f"{name}-tls", host, acme_issuer, started, [])
    wait_for(f"cert-manager's ingress shim to create Certificate {namespace}/{name}-tls",
             lambda: certs.certificate(dyn, namespace, f"{name}-tls"), timeout="certificate_served")
    state = watch_until_ready(dyn, ordered)
    issued = record_measurement("golden path: certificate Ready", ordered.age(), "s", budget="certificate_issued_s")

    origin = profile.outside
    served = wait_for(f"a verified HTTPS answer for {host} at {address} from {origin.netns or 'the runner'}",
                      lambda: tls.handshake_from(origin.origin, origin.netns, address, host, roots=roots_file,
                                                 path="/hostname"),
                      until=lambda s: s.verified and s.status == 200, timeout="certificate_served")
    record_measurement("golden path: first verified HTTPS answer", time.monotonic() - started, "s")
    leaf = certs.parse_pem(served.leaf_pem)
    assert leaf.matches(host), f"{served}\nserved {leaf}"
    assert served.body.strip().startswith(name), f"the answer is not the application's own: {served}"
    assert state.ready and issued.value <= issued.budget, f"{issued}\n{state}"

"""TLS certificates from cert-manager: admitted, ordered through ACME, served, renewed, healthy.

Certificates are ordered for run-scoped names of the profile's ACME zone from the profile's test
issuer (never a production issuer unless the policy allows it), and judged by what cert-manager
computed and by the certificate itself: its names, and a chain verified against the issuers'
own roots. A wait that gives up shows the ACME trail (each Order and Challenge, with its state
and reason), which is where a wrong ACME URL or a refused DNS update shows.
"""
from __future__ import annotations

import datetime as dt
import time

import pytest
from kubernetes import client as k8s

from conformance import manifests
from conformance.probes import certificates as certs
from conformance.probes import tls
from conformance.probes.workloads import ECHO_IMAGE
from conformance.run import RUN_LABEL
from conformance.waiting import wait_for
from fixtures.certificates import ordering_issuer, watch_until_ready

RENEWAL_WITHIN_S = 300  # the promise: a certificate due for renewal is renewed within 5 minutes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _issued_problems(core, state: certs.CertificateState, roots: str | None) -> list[str]:
    """What is wrong with the certificate in the Secret: its names, its chain to the roots."""
    issued = certs.secret_certificate(core, state.namespace, state.secret)
    problems = [f"{state.secret} holds a {issued} for {name}, which it does not name"
                for name in state.dns_names if not issued.matches(name)]
    chain = certs.chain_problem(issued.pem, roots, state.dns_names[0])
    if chain:
        problems.append(f"{state.secret}'s chain does not verify against the issuer's roots: {chain} ({issued})")
    return problems


@pytest.mark.cert_manager
@pytest.mark.writes
@pytest.mark.promise("cert-manager/webhook/admits-certificate")
def test_api_and_webhook_admit_a_certificate(kube, namespace, cert_manager):
    """cert-manager's API and webhook MUST admit a valid Certificate and reject an invalid one.

    Both are dry runs, so nothing is stored; the invalid one (a one-minute duration, below
    cert-manager's floor of an hour) is refused only by the webhook's own validation, so its
    refusal proves the webhook answered.
    """
    issuer = cert_manager.test_issuer or (cert_manager.cluster_issuers or ("any",))[0]
    api = k8s.CustomObjectsApi(kube)
    good = certs.certificate_docs("pcf-admission", "admission.invalid", issuer)[0]
    api.create_namespaced_custom_object("cert-manager.io", "v1", namespace, "certificates", good, dry_run="All")
    bad = certs.certificate_docs("pcf-admission", "admission.invalid", issuer, duration="1m", renew_before="30s")[0]
    with pytest.raises(k8s.ApiException) as refused:
        api.create_namespaced_custom_object("cert-manager.io", "v1", namespace, "certificates", bad, dry_run="All")
    assert "webhook.cert-manager.io" in refused.value.body and "duration" in refused.value.body, refused.value.body


@pytest.mark.cert_manager
@pytest.mark.promise("cert-manager/issuer/ready")
@pytest.mark.covers("cert-manager/issuer")
def test_every_claimed_cluster_issuer_is_ready(dyn, cert_manager):
    """Every ClusterIssuer the profile claims MUST exist and be Ready.

    An ACME issuer is Ready once its account is registered with the ACME server, so an issuer
    pointing at a wrong server shows here with the server's error.
    """
    found = [certs.issuer(dyn, name) for name in cert_manager.cluster_issuers or ()]
    assert [str(i) for i in found if not i.ready] == [], "\n".join(str(i) for i in found)


@pytest.mark.cert_manager
@pytest.mark.writes
@pytest.mark.promise("cert-manager/acme/dns01-issued")
def test_certificate_issued_through_acme_dns01(dyn, kube, namespace, acme_issuer, order_certificate,
                                               issuer_roots, profile, record_measurement):
    """A Certificate MUST be issued through the whole ACME flow (Order, DNS-01 Challenge, Ready) within
    budgets.certificate_issued_s, and name its host and chain to the issuer's roots.

    The Order and Challenge are watched while they live, because cert-manager removes a
    Challenge once its Order is valid; the chain is verified by a path builder against the
    profile's roots alone.
    """
    ordered = order_certificate(namespace, "tls", acme_issuer)
    state = watch_until_ready(dyn, ordered)
    took = record_measurement("certificate issuance (ACME DNS-01)", ordered.age(), "s",
                              budget="certificate_issued_s")
    seen = "\n".join(f"{t:.0f} s: {trail}" for t, trail in ordered.seen)
    assert "dns-01" in ordered.challenge_types(), f"no DNS-01 Challenge was seen on the way to Ready\n{seen}"
    assert "valid" in ordered.order_states(), f"no Order reached valid\n{seen}"
    assert _issued_problems(k8s.CoreV1Api(kube), state, issuer_roots) == []
    assert took.value <= took.budget, f"{took}\n{seen}"


@pytest.mark.cert_manager
@pytest.mark.writes
@pytest.mark.slow
@pytest.mark.promise("cert-manager/renewal/renews-before-expiry")
def test_short_lived_certificate_renews_by_itself(dyn, kube, namespace, cert_manager, profile,
                                                  order_certificate, issuer_roots, record_measurement):
    """A certificate due for renewal MUST be renewed by cert-manager by itself, within 5 minutes of its issuance.

    The certificate lives an hour (the shortest cert-manager admits) and is due two minutes after
    issuance; the renewal must bring a new certificate (a new serial), still valid for its name.
    """
    issuer = ordering_issuer(profile, "short_duration_issuer")
    ordered = order_certificate(namespace, "renew", issuer, duration=certs.SHORT_DURATION,
                                renew_before=certs.SHORT_RENEW_BEFORE)
    first = watch_until_ready(dyn, ordered)
    core = k8s.CoreV1Api(kube)
    before = certs.secret_certificate(core, namespace, first.secret)
    issued_at = ordered.age()
    renewed = watch_until_ready(dyn, ordered, timeout=float(RENEWAL_WITHIN_S + 60), revision=first.revision + 1)
    after = certs.secret_certificate(core, namespace, renewed.secret)
    took = record_measurement("certificate renewal after issuance", ordered.age() - issued_at, "s")
    assert after.serial != before.serial, f"revision {renewed.revision} kept the old certificate: {after}"
    assert _issued_problems(core, renewed, issuer_roots) == []
    assert took.value <= RENEWAL_WITHIN_S, f"renewed {took.value:.0f} s after issuance (due after " \
                                           f"{first.renewal_time}): {before} -> {after}"


def _controller_address(kube, profile) -> str:
    """The ingress controller's LoadBalancer address (the first one, IPv4 preferred)."""
    ing = profile.components.ingress
    if not (ing and ing.claimed and ing.service and ing.namespace):
        pytest.skip(f"profile {profile.name} claims no ingress controller with a LoadBalancer Service "
                    "(components.ingress.service)")
    svc = k8s.CoreV1Api(kube).read_namespaced_service(ing.service, ing.namespace)
    found = [i.ip for i in (svc.status.load_balancer.ingress or ()) if i.ip]
    assert found, f"Service {ing.namespace}/{ing.service} has no LoadBalancer address: {svc.status.load_balancer}"
    return sorted(found, key=lambda a: ":" in a)[0]


@pytest.mark.cert_manager
@pytest.mark.writes
@pytest.mark.promise("cert-manager/acme/http01-served")
def test_http01_certificate_is_served_for_its_host(dyn, kube, namespace, cert_manager, profile, dns_zone,
                                                   outside_writes, order_certificate, issuer_roots, roots_file,
                                                   record_measurement):
    """A Certificate MUST be issued through an HTTP-01 Challenge answered behind the ingress class, and
    the controller MUST then serve it for its host, with the host's name and a chain to the issuer's roots.

    The host's A record points at the controller's LoadBalancer address, as a user's DNS would, and
    the handshake comes from the outside host.
    """
    issuer = ordering_issuer(profile, "http01_issuer")
    address = _controller_address(kube, profile)
    ordered = order_certificate(namespace, "http01", issuer)
    outside_writes.write("dns", ordered.dns_name, lambda: dns_zone.set_address(ordered.dns_name, address))
    state = watch_until_ready(dyn, ordered)
    record_measurement("certificate issuance (ACME HTTP-01)", ordered.age(), "s", budget="certificate_issued_s")
    seen = "\n".join(f"{t:.0f} s: {trail}" for t, trail in ordered.seen)
    assert "http-01" in ordered.challenge_types(), f"no HTTP-01 Challenge was seen on the way to Ready\n{seen}"
    docs = certs.render("web", NAME=ordered.name, HOST=ordered.dns_name, ANNOTATIONS="{}",
                        INGRESS_CLASS=profile.components.ingress.ingress_class,
                        ECHO_IMAGE=profile.images.image(ECHO_IMAGE))
    manifests.apply(docs, kube, namespace=namespace)
    served = served_when_ready(profile, address, ordered.dns_name, roots_file)
    issued = certs.parse_pem(served.leaf_pem)
    assert issued.matches(ordered.dns_name) and served.verified, str(served)


def served_when_ready(profile, address: str, host: str, roots_file: str | None) -> tls.ServedTLS:
    """The certificate the controller serves for `host` once it serves one for that name."""
    origin = profile.outside
    return wait_for(f"the ingress controller at {address} to serve a certificate for {host} from {origin.netns or 'the runner'}",
                    lambda: tls.handshake_from(origin.origin, origin.netns, address, host, roots=roots_file),
                    until=lambda s: s.leaf_pem and certs.parse_pem(s.leaf_pem).matches(host) and s.status is not None,
                    timeout="certificate_served")


# --- read-only: the platform's own certificates ----------------------------------------------

@pytest.mark.cert_manager
@pytest.mark.promise("cert-manager/health/certificates-ready-with-lifetime")
def test_every_certificate_is_ready_with_remaining_lifetime(dyn, profile):
    """Every Certificate on the platform MUST be Ready and valid for at least budgets.min_certificate_days.

    Certificates a conformance run made (run-labelled) are left out: they are the run's, not the platform's.
    """
    at, floor = _now(), profile.budgets.min_certificate_days
    found = [c for c in certs.certificates(dyn) if not c.run]
    broken = [f"{c.where}: {c.reason}: {c.message}" if not c.ready else
              f"{c.where}: {c.remaining_days(at):.2f} days left, below {floor:g} (notAfter {c.not_after}, "
              f"renewal {c.renewal_time})"
              for c in found if not c.ready or (c.remaining_days(at) or 0) < floor]
    assert not broken, f"{len(broken)} of {len(found)} Certificates: " + "; ".join(broken) + \
        "\n-- every Certificate checked:\n" + "\n".join(str(c) for c in found)


@pytest.mark.cert_manager
@pytest.mark.promise("cert-manager/health/ingress-hosts-served")
def test_every_ingress_tls_host_serves_a_matching_certificate(kube, profile, issuer_roots, roots_file):
    """Every TLS host of every Ingress MUST be served a certificate that names it and chains to a trusted root.

    The handshake goes to the Ingress's own published address with the host as SNI, from
    where users stand, exactly as a browser would ask.
    """
    net = k8s.NetworkingV1Api(kube)
    origin = profile.outside
    checked, broken = [], []
    for ing in net.list_ingress_for_all_namespaces().items:
        if RUN_LABEL in (ing.metadata.labels or {}):
            continue
        addresses = [i.ip for i in ((ing.status.load_balancer or k8s.V1IngressLoadBalancerStatus()).ingress or ()) if i.ip]
        for rule in ing.spec.tls or ():
            for host in rule.hosts or ():
                where = f"Ingress {ing.metadata.namespace}/{ing.metadata.name} host {host}"
                if not addresses:
                    broken.append(f"{where}: the Ingress publishes no address")
                    continue
                served = tls.handshake_from(origin.origin, origin.netns, addresses[0], host, roots=roots_file)
                checked.append(f"{where}: {served}")
                if not served.leaf_pem:
                    broken.append(f"{where}: {served}")
                elif not certs.parse_pem(served.leaf_pem).matches(host) or not served.verified:
                    broken.append(f"{where}: served {certs.parse_pem(served.leaf_pem)}; {served}")
    assert not broken, f"{len(broken)} TLS host(s): " + "; ".join(broken) + \
        "\n-- every TLS host checked:\n" + "\n".join(checked)

"""The ingress controller: what each implementation does by default, and how it stands now.

One adapter per implementation (the profile's components.ingress.controller) says what the
promises must not guess: the IngressClass controller name, the annotation that turns on the
HTTP to HTTPS redirect, and the default answer for a host no Ingress names. Controller health is
read generically (every Deployment and DaemonSet in the controller's namespace), so a stopped
controller or proxy is named in a failure whatever the chart called it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from kubernetes import client as k8s

REQUEST_TIMEOUT = (5, 30)


@dataclass(frozen=True)
class Adapter:
    name: str
    controller: str  # IngressClass spec.controller
    redirect_annotations: tuple[tuple[str, str], ...]  # ask for HTTP -> HTTPS on one Ingress
    unknown_host_status: int  # what the proxy answers for a host no Ingress names
    redirect_status: tuple[int, ...]  # what a forced HTTPS redirect answers


ADAPTERS = {
    # Envoy answers 404 for a virtual host it does not know; Contour's force-ssl-redirect is a 301.
    "contour": Adapter("contour", "projectcontour.io/ingress-controller",
                       (("ingress.kubernetes.io/force-ssl-redirect", "true"),), 404, (301,)),
}


def adapter(name: str) -> Adapter:
    return ADAPTERS[name]


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    desired: int
    ready: int

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.ready} of {self.desired} ready"


@dataclass(frozen=True)
class Controller:
    """The controller's namespace as it stands: its workloads and its LoadBalancer Service."""

    namespace: str
    workloads: tuple[Workload, ...]
    service: str | None
    service_found: bool
    service_type: str | None
    addresses: tuple[str, ...]
    ingress_class: str
    class_controller: str | None  # the IngressClass's spec.controller; None when it does not exist

    @property
    def unready(self) -> tuple[Workload, ...]:
        return tuple(w for w in self.workloads if w.ready < w.desired or w.desired == 0)

    @property
    def trouble(self) -> str | None:
        """What stops the controller from serving, or None when nothing visible does."""
        if self.unready:
            return "; ".join(f"{w.kind} {self.namespace}/{w.name}: {w.ready} of {w.desired} ready"
                             for w in self.unready) + ": the ingress controller is not serving"
        if self.service and not (self.service_found and self.addresses):
            return f"Service {self.namespace}/{self.service} has no LoadBalancer address"
        if self.class_controller is None:
            return f"IngressClass {self.ingress_class} does not exist"
        return None

    def __str__(self) -> str:
        parts = [f"{self.namespace}: " + ("; ".join(map(str, self.workloads)) or "no Deployment or DaemonSet")]
        if self.service:
            parts.append(f"Service {self.namespace}/{self.service}: " + (
                f"type {self.service_type}, addresses {list(self.addresses) or 'none'}" if self.service_found
                else "not found"))
        parts.append(f"IngressClass {self.ingress_class}: " + (
            f"controller {self.class_controller}" if self.class_controller else "not found"))
        return "; ".join(parts)


def controller(api: k8s.ApiClient, namespace: str, service: str | None, ingress_class: str) -> Controller:
    apps = k8s.AppsV1Api(api)
    workloads = [Workload("Deployment", d.metadata.name, d.spec.replicas or 0, d.status.ready_replicas or 0)
                 for d in apps.list_namespaced_deployment(namespace, _request_timeout=REQUEST_TIMEOUT).items]
    workloads += [Workload("DaemonSet", d.metadata.name, d.status.desired_number_scheduled or 0,
                           d.status.number_ready or 0)
                  for d in apps.list_namespaced_daemon_set(namespace, _request_timeout=REQUEST_TIMEOUT).items]
    found, kind, addresses = False, None, ()
    if service:
        try:
            svc = k8s.CoreV1Api(api).read_namespaced_service(service, namespace, _request_timeout=REQUEST_TIMEOUT)
            found, kind = True, svc.spec.type
            ingress = (svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None) or []
            addresses = tuple(i.ip for i in ingress if i.ip)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
    try:
        cls = k8s.NetworkingV1Api(api).read_ingress_class(ingress_class, _request_timeout=REQUEST_TIMEOUT)
        class_controller = cls.spec.controller
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        class_controller = None
    return Controller(namespace, tuple(workloads), service, found, kind, addresses, ingress_class,
                      class_controller)


def ingress_addresses(api: k8s.ApiClient, namespace: str, name: str) -> tuple[str, ...]:
    """The addresses the controller wrote into the Ingress's status (it has taken it on)."""
    ing = k8s.NetworkingV1Api(api).read_namespaced_ingress(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    lb = ing.status.load_balancer if ing.status else None
    return tuple(i.ip or i.hostname for i in (lb.ingress if lb and lb.ingress else []))


@dataclass(frozen=True)
class SelfSigned:
    """A certificate a test makes for its own hosts, for HTTPS before any issuer is involved."""

    hosts: tuple[str, ...]
    cert_pem: str
    key_pem: str
    sha256: str  # of the DER certificate, as the outside client reports what it was served


def self_signed(hosts: tuple[str, ...], days: int = 1) -> SelfSigned:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return SelfSigned(hosts, cert.public_bytes(serialization.Encoding.PEM).decode(),
                      key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode(),
                      hashlib.sha256(der).hexdigest())

"""cert-manager's objects as evidence: Certificates, issuers, and the ACME trail behind an issuance.

Everything here reads what cert-manager computed (conditions, orders, challenges, the issued
Secret) and returns frozen facts; the tests assert. `AcmeTrail` is the diagnosis of an ACME
issuance that did not finish: each Order and Challenge with its state and reason, which is
where cert-manager says what went wrong (a wrong ACME URL, a TSIG key the zone refuses).
"""
from __future__ import annotations

import base64
import datetime as dt
import string
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from conformance.profile import Profile
from conformance.run import RUN_LABEL

CERT_API = "cert-manager.io/v1"
ACME_API = "acme.cert-manager.io/v1"


def _condition(obj: dict, kind: str = "Ready") -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == kind), {})


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class CertificateState:
    """One Certificate as cert-manager last judged it."""

    namespace: str
    name: str
    ready: bool
    reason: str
    message: str
    issuer: str  # "ClusterIssuer/pebble"
    dns_names: tuple[str, ...]
    secret: str
    not_after: dt.datetime | None
    not_before: dt.datetime | None
    renewal_time: dt.datetime | None
    revision: int
    run: str | None = None  # the conformance run that made it, from its label

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def remaining_days(self, at: dt.datetime) -> float | None:
        return None if self.not_after is None else (self.not_after - at).total_seconds() / 86400

    def __str__(self) -> str:
        state = "Ready" if self.ready else f"not Ready ({self.reason}: {self.message})"
        return (f"Certificate {self.where} from {self.issuer}, {state}, revision {self.revision}, "
                f"notAfter {self.not_after}, renewal {self.renewal_time}")

    @classmethod
    def of(cls, obj: dict) -> CertificateState:
        spec, status, ready = obj.get("spec") or {}, obj.get("status") or {}, _condition(obj)
        ref = spec.get("issuerRef") or {}
        return cls(
            namespace=obj["metadata"]["namespace"], name=obj["metadata"]["name"],
            ready=ready.get("status") == "True", reason=ready.get("reason", "no Ready condition yet"),
            message=ready.get("message", ""), issuer=f"{ref.get('kind', 'Issuer')}/{ref.get('name')}",
            dns_names=tuple(spec.get("dnsNames") or ()), secret=spec.get("secretName", ""),
            not_after=_time(status.get("notAfter")), not_before=_time(status.get("notBefore")),
            renewal_time=_time(status.get("renewalTime")), revision=int(status.get("revision") or 0),
            run=(obj["metadata"].get("labels") or {}).get(RUN_LABEL))


def certificate(dyn: DynamicClient, namespace: str, name: str) -> CertificateState:
    res = dyn.resources.get(api_version=CERT_API, kind="Certificate")
    return CertificateState.of(res.get(name=name, namespace=namespace).to_dict())


def certificates(dyn: DynamicClient) -> list[CertificateState]:
    """Every Certificate in every namespace."""
    res = dyn.resources.get(api_version=CERT_API, kind="Certificate")
    return [CertificateState.of(o) for o in res.get().to_dict()["items"]]


@dataclass(frozen=True)
class IssuerState:
    kind: str
    name: str
    exists: bool
    ready: bool
    reason: str
    message: str

    def __str__(self) -> str:
        if not self.exists:
            return f"{self.kind} {self.name}: does not exist"
        return f"{self.kind} {self.name}: " + ("Ready" if self.ready else f"not Ready ({self.reason}: {self.message})")


def issuer(dyn: DynamicClient, name: str, kind: str = "ClusterIssuer", namespace: str | None = None) -> IssuerState:
    res = dyn.resources.get(api_version=CERT_API, kind=kind)
    try:
        obj = res.get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return IssuerState(kind, name, False, False, "NotFound", "")
    ready = _condition(obj)
    return IssuerState(kind, name, True, ready.get("status") == "True", ready.get("reason", "no Ready condition"),
                       ready.get("message", ""))


@dataclass(frozen=True)
class Step:
    """One object of the ACME trail: an Order or a Challenge, with cert-manager's view of it."""

    kind: str
    name: str
    state: str
    reason: str
    detail: str = ""  # a Challenge's type and name; an Order's names

    def __str__(self) -> str:
        return f"{self.kind} {self.name} [{self.detail}]: state {self.state or '(none yet)'}" + (
            f", reason: {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class AcmeTrail:
    """The CertificateRequests, Orders and Challenges of one namespace, in creation order."""

    namespace: str
    requests: tuple[Step, ...]
    orders: tuple[Step, ...]
    challenges: tuple[Step, ...]

    @property
    def order_states(self) -> tuple[str, ...]:
        return tuple(o.state for o in self.orders)

    def __str__(self) -> str:
        steps = self.requests + self.orders + self.challenges
        body = "\n".join(f"  {s}" for s in steps) or "  (no CertificateRequest, Order or Challenge)"
        return f"ACME trail in {self.namespace}:\n{body}"


def _created(obj: dict) -> str:
    return obj["metadata"].get("creationTimestamp") or ""


def acme_trail(dyn: DynamicClient, namespace: str) -> AcmeTrail:
    def items(api: str, kind: str) -> list[dict]:
        res = dyn.resources.get(api_version=api, kind=kind)
        return sorted(res.get(namespace=namespace).to_dict()["items"], key=_created)

    requests = tuple(Step("CertificateRequest", o["metadata"]["name"],
                          _condition(o).get("reason", ""), _condition(o).get("message", ""))
                     for o in items(CERT_API, "CertificateRequest"))
    orders = tuple(Step("Order", o["metadata"]["name"], (o.get("status") or {}).get("state", ""),
                        (o.get("status") or {}).get("reason", ""), ",".join(o["spec"].get("dnsNames") or ()))
                   for o in items(ACME_API, "Order"))
    challenges = tuple(Step("Challenge", o["metadata"]["name"], (o.get("status") or {}).get("state", ""),
                            (o.get("status") or {}).get("reason", ""),
                            f"{o['spec'].get('type')} {o['spec'].get('dnsName')}")
                       for o in items(ACME_API, "Challenge"))
    return AcmeTrail(namespace, requests, orders, challenges)


@dataclass(frozen=True)
class IssuedCertificate:
    """The leaf certificate a TLS Secret (or a server) holds."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int
    chain_length: int = 1
    pem: str = field(default="", repr=False)

    def matches(self, host: str) -> bool:
        """`host` is one of the SANs, or under a wildcard SAN one label deep."""
        host = host.lower().rstrip(".")
        for san in self.dns_names:
            san = san.lower()
            if san == host or (san.startswith("*.") and host.partition(".")[2] == san[2:]):
                return True
        return False

    def __str__(self) -> str:
        return (f"certificate for {', '.join(self.dns_names) or self.subject} from {self.issuer}, "
                f"valid {self.not_before:%Y-%m-%d %H:%M} to {self.not_after:%Y-%m-%d %H:%M} UTC, serial {self.serial:x}")


def parse_pem(pem: str | bytes) -> IssuedCertificate:
    """The first certificate of a PEM bundle (the leaf), and how many the bundle holds."""
    raw = pem.encode() if isinstance(pem, str) else pem
    chain = x509.load_pem_x509_certificates(raw)
    leaf = chain[0]
    try:
        sans = tuple(leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
                     .value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    return IssuedCertificate(leaf.subject.rfc4514_string(), leaf.issuer.rfc4514_string(), sans,
                             leaf.not_valid_before_utc, leaf.not_valid_after_utc, leaf.serial_number,
                             len(chain), raw.decode())


def secret_certificate(core, namespace: str, name: str) -> IssuedCertificate:
    """The certificate in a TLS Secret's tls.crt."""
    secret = core.read_namespaced_secret(name, namespace)
    return parse_pem(base64.b64decode((secret.data or {})["tls.crt"]))


def chain_problem(bundle_pem: str, roots_pem: str | None, host: str, at: dt.datetime | None = None) -> str | None:
    """Why the bundle (leaf first, then intermediates) does not chain to `roots_pem` (or the
    system store) for `host`; None when it does. Checked by cryptography's path builder, as a
    browser would: signatures, validity, SAN and key usage."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    chain = x509.load_pem_x509_certificates(bundle_pem.encode())
    if roots_pem:
        roots = x509.load_pem_x509_certificates(roots_pem.encode())
    else:
        import ssl

        paths = ssl.get_default_verify_paths()
        roots = x509.load_pem_x509_certificates(open(paths.cafile or "/etc/ssl/certs/ca-certificates.crt", "rb").read())
    builder = PolicyBuilder().store(Store(roots))
    if at is not None:
        builder = builder.time(at)
    try:
        builder.build_server_verifier(x509.DNSName(host)).verify(chain[0], chain[1:])
    except VerificationError as exc:
        return f"{exc}"
    return None


# --- what a full run orders ------------------------------------------------------------------

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "cert-manager" / "probes"
# The shortest lifetime cert-manager's webhook admits, and a renewBefore that makes such a
# certificate due two minutes after it is issued.
SHORT_DURATION, SHORT_RENEW_BEFORE = "1h", "58m"


def render(name: str, **values: str) -> list[dict]:
    """The documents of manifests/cert-manager/probes/<name>.yaml with ${PLACEHOLDERS} filled in;
    a placeholder left without a value is a KeyError naming it."""
    text = string.Template((MANIFESTS / f"{name}.yaml").read_text()).substitute(values)
    return [d for d in yaml.safe_load_all(text) if d]


def certificate_docs(name: str, dns_name: str, issuer: str, duration: str = "2160h",
                     renew_before: str = "720h") -> list[dict]:
    """A Certificate for one name (Let's Encrypt's 90 days, renewed at 30 by default)."""
    return render("certificate", NAME=name, DNS_NAME=dns_name, ISSUER=issuer, DURATION=duration,
                  RENEW_BEFORE=renew_before)


def ordering_refusal(profile: Profile, issuer: str | None) -> str | None:
    """Why a run must not order a certificate from `issuer` on this platform, or None.

    A production ACME service has rate limits a nightly run would exhaust, so its issuers are
    used only where the profile's policy says so; with no test issuer nothing is ordered."""
    cm = profile.components.cert_manager
    if issuer is None:
        return (f"profile {profile.name} names no components.cert_manager.test_issuer, so no certificate "
                "is ordered (name a staging or local ACME issuer there to allow it)")
    if cm and issuer in cm.production_issuers and not profile.policy.allow_new_production_certificates:
        return (f"{issuer} is a production ACME issuer (components.cert_manager.production_issuers) and "
                f"profile {profile.name} sets policy.allow_new_production_certificates: false")
    return None


def issuer_roots(url: str | None, timeout_s: float = 10.0) -> str | None:
    """The issuers' root certificates (PEM) from `url`, or None for the system trust store.

    The roots are what a client is told to trust; fetching them over an unverified connection
    is fine for a local ACME server, whose certificates are then verified against them."""
    if not url:
        return None
    response = httpx.get(url, verify=False, timeout=timeout_s)
    response.raise_for_status()
    return response.text

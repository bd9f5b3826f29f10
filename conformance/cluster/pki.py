"""The local cluster's certificate authority, its certificates and kubeconfigs.

One CA signs everything; each identity gets its own client certificate so the API server's
audit log names who did what (the read-only identity's requests are checked from that log).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance.cluster import paths

CA_DAYS = 3650
LEAF_DAYS = 365


@dataclass(frozen=True)
class Identity:
    """A client certificate subject: user name and groups."""

    file: str
    user: str
    groups: tuple[str, ...] = ()


# Users the cluster's own components and the suite authenticate as.
IDENTITIES = (
    Identity("admin", "pcf:admin", ("system:masters",)),
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    Identity("kubelet", "system:node:pcf-node", ("system:nodes",)),
    Identity("kube-proxy", "system:kube-proxy"),
    Identity("kube-router", "pcf:kube-router"),
    Identity("apiserver-kubelet-client", "pcf:apiserver-kubelet-client", ("system:masters",)),
    # The suite's two identities; their RBAC ships in manifests/rbac.
    Identity("reader", "platform-conformance:reader", ("platform-conformance:readers",)),
    Identity("runner", "platform-conformance:runner", ("platform-conformance:runners",)),
)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    path.chmod(0o600)


def _load(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ensure_ca(pki: Path = paths.PKI) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    pki.mkdir(parents=True, exist_ok=True)
    crt, key = pki / "ca.crt", pki / "ca.key"
    if crt.exists() and key.exists():
        return x509.load_pem_x509_certificate(crt.read_bytes()), _load(key)
    ca_key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("platform-conformance local CA"))
        .issuer_name(_name("platform-conformance local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(ca_key, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, ca_key


def issue(name: str, cn: str, orgs: tuple[str, ...] = (), dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), server: bool = False, pki: Path = paths.PKI) -> tuple[Path, Path]:
    """Issue (once) a leaf certificate signed by the local CA; returns (cert, key) paths."""
    crt, keyfile = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and keyfile.exists():
        return crt, keyfile
    ca_cert, ca_key = ensure_ca(pki)
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    )
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key, keyfile)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, keyfile


def service_account_keys(pki: Path = paths.PKI) -> tuple[Path, Path]:
    key_path, pub_path = pki / "sa.key", pki / "sa.pub"
    if not key_path.exists():
        key = _key()
        _write_key(key, key_path)
        pub_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return key_path, pub_path


def write_kubeconfig(identity: Identity, server: str, pki: Path = paths.PKI) -> Path:
    crt, key = issue(identity.file, identity.user, identity.groups, pki=pki)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pcf-local", "cluster": {
            "server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": identity.user, "user": {
            "client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": f"pcf-local-{identity.file}", "context": {
            "cluster": "pcf-local", "user": identity.user}}],
        "current-context": f"pcf-local-{identity.file}",
    }
    path = paths.kubeconfig(identity.file)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path

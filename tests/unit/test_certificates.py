"""cert-manager evidence: certificate facts, chain verification, the ACME trail, the ordering policy."""
from __future__ import annotations

import datetime as dt
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance import profile as profiles
from conformance.probes import certificates as certs
from conformance.probes import tls

NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key, issuer: str, key, *, ca: bool, sans=(), days: float = 90):
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certificates) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


@pytest.fixture(scope="module")
def pki():
    """A root, an intermediate and a leaf for web.pcf.test, like an ACME CA's chain; and a stranger root."""
    root_key, mid_key, leaf_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    root = _cert("root", root_key, "root", root_key, ca=True)
    mid = _cert("intermediate", root_key, "root", mid_key, ca=True)
    leaf = _cert("web", mid_key, "intermediate", leaf_key, ca=False, sans=("web.pcf.test",))
    other = _cert("other root", other_key, "other root", other_key, ca=True)
    return {"root": _pem(root), "other": _pem(other), "bundle": _pem(leaf, mid), "leaf_key": leaf_key}


def test_parse_reads_names_issuer_and_chain_length(pki):
    issued = certs.parse_pem(pki["bundle"])
    assert issued.dns_names == ("web.pcf.test",) and issued.issuer == "CN=intermediate"
    assert issued.chain_length == 2 and issued.not_after > NOW


def test_a_name_matches_its_san_or_a_wildcard_one_label_deep():
    issued = certs.IssuedCertificate("", "", ("a.pcf.test", "*.w.pcf.test"), NOW, NOW, 1)
    assert issued.matches("A.pcf.test.") and issued.matches("x.w.pcf.test")
    assert not issued.matches("b.pcf.test") and not issued.matches("y.x.w.pcf.test") and not issued.matches("w.pcf.test")


def test_a_chain_verifies_against_its_root_only(pki):
    assert certs.chain_problem(pki["bundle"], pki["root"], "web.pcf.test") is None
    assert certs.chain_problem(pki["bundle"], pki["other"], "web.pcf.test") is not None
    assert certs.chain_problem(pki["bundle"], pki["root"], "other.pcf.test") is not None


def _certificate(ready="True", reason="Ready", revision=1, labels=None):
    return {"metadata": {"namespace": "web", "name": "site", "labels": labels or {}},
            "spec": {"secretName": "site-tls", "dnsNames": ["site.pcf.test"],
                     "issuerRef": {"kind": "ClusterIssuer", "name": "pebble"}},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "m"}],
                       "notAfter": "2026-12-01T00:00:00Z", "revision": revision}}


def test_certificate_state_reads_cert_managers_judgement():
    state = certs.CertificateState.of(_certificate())
    assert state.ready and state.issuer == "ClusterIssuer/pebble" and state.revision == 1 and state.run is None
    assert state.remaining_days(dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)) == 1
    broken = certs.CertificateState.of(_certificate("False", "Failed", labels={"platform-conformance.io/run": "r1"}))
    assert not broken.ready and "Failed: m" in str(broken) and broken.run == "r1"


def test_the_trail_prints_each_order_and_challenge_with_state_and_reason():
    trail = certs.AcmeTrail("web", (), (certs.Step("Order", "o1", "pending", "", "site.pcf.test"),),
                            (certs.Step("Challenge", "c1", "pending", "NOTAUTH", "dns-01 site.pcf.test"),))
    assert "Order o1 [site.pcf.test]: state pending" in str(trail)
    assert "Challenge c1 [dns-01 site.pcf.test]: state pending, reason: NOTAUTH" in str(trail)
    assert "(no CertificateRequest, Order or Challenge)" in str(certs.AcmeTrail("web", (), (), ()))


def test_production_orders_nothing_and_a_production_issuer_needs_the_policy():
    prod = profiles.load("production")
    assert "names no components.cert_manager.test_issuer" in certs.ordering_refusal(prod, prod.components.cert_manager.test_issuer)
    assert "allow_new_production_certificates: false" in certs.ordering_refusal(prod, "letsencrypt")
    assert certs.ordering_refusal(prod, "letsencrypt-staging") is None
    local = profiles.load("local")
    assert certs.ordering_refusal(local, local.components.cert_manager.test_issuer) is None


def test_certificate_template_fills_every_placeholder():
    doc = certs.certificate_docs("c", "c.pcf.test", "pebble", duration=certs.SHORT_DURATION,
                                 renew_before=certs.SHORT_RENEW_BEFORE)[0]
    assert doc["spec"]["dnsNames"] == ["c.pcf.test"] and doc["spec"]["duration"] == "1h"
    with pytest.raises(KeyError):
        certs.render("web", NAME="x", HOST="h")


def test_handshake_shows_what_was_served_and_why_a_client_refuses_it(pki, tmp_path):
    """A real TLS server on loopback: the leaf is read, the HTTP answer kept, the chain judged."""
    (tmp_path / "chain.pem").write_text(pki["bundle"])
    (tmp_path / "key.pem").write_bytes(pki["leaf_key"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "root.pem").write_text(pki["root"])
    (tmp_path / "other.pem").write_text(pki["other"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        for _ in range(4):
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as s:
                    if s.recv(4096).startswith(b"GET"):
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    good = tls.handshake("127.0.0.1", "web.pcf.test", port, roots=str(tmp_path / "root.pem"))
    assert good.verified and good.status == 200 and good.body == "hello", str(good)
    assert certs.parse_pem(good.leaf_pem).matches("web.pcf.test")
    bad = tls.handshake("127.0.0.1", "web.pcf.test", port, roots=str(tmp_path / "other.pem"))
    assert not bad.verified and "unable to get local issuer" in bad.verify_error, str(bad)
    listener.close()
    gone = tls.handshake("127.0.0.1", "web.pcf.test", port, timeout_s=1)
    assert not gone.leaf_pem and "no handshake" in str(gone)

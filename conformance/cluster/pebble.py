"""The local ACME server: Let's Encrypt's pebble, the server the local ClusterIssuers order from.

Certificates are issued through the whole ACME flow (account, order, authorization, DNS-01 or
HTTP-01 challenge, finalize), as Let's Encrypt would issue them. The shape every host-side
service of the harness follows:

- start: `spec()`, the supervised command line (its TLS certificate made with openssl the first time);
- ready: `ready()`, true once the ACME directory answers;
- stop: the supervisor's SIGTERM;
- leaves behind: its TLS key and certificate under paths.STATE and its configuration under
  paths.RUN. pebble keeps accounts, orders and its issuing CA in memory: a restart forgets
  them and makes a new root, which `roots()` always reads fresh.

Validation looks names up in bind9 (the pcf.test zone), and reaches HTTP-01 answers on port 80
of whatever address the zone gives, as Let's Encrypt reaches a LoadBalancer address. pebble
rejects a share of nonces on purpose (PEBBLE_WFE_NONCEREJECT, 5 by default): cert-manager must
retry them. Authorizations are never reused, so every order goes through its challenges.
"""
from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

from conformance.cluster import bind9
from conformance.cluster import network as net
from conformance.cluster import paths

NAME = "pebble"
PORT, MANAGEMENT_PORT = 14000, 15000
ACME_DIRECTORY = f"https://{net.NODE_IPV4}:{PORT}/dir"
MANAGEMENT = f"https://{net.NODE_IPV4}:{MANAGEMENT_PORT}"
PORTS = {PORT: "pebble ACME", MANAGEMENT_PORT: "pebble management (roots, intermediates)"}
READY_S = 20
PACKAGES = ("openssl",)
PROGRAM = ("pebble", "pebble")  # stack.yaml programs entry, binary
STATE = paths.STATE / "pebble"
CONFIG = paths.RUN / "pebble" / "pebble.json"
OPENSSL_TIMEOUT_S = 30
ENV = {
    "PEBBLE_VA_NOSLEEP": "1",       # validate at once, not after a random pause of up to 15 s
    "PEBBLE_AUTHZREUSE": "0",       # every order shows its challenges
    "PEBBLE_WFE_NONCEREJECT": "5",  # Let's Encrypt-like nonce churn, stated rather than defaulted
}


def binary() -> Path:
    from conformance.cluster.build import programs

    name, file = PROGRAM
    return programs()[name].binary(file)


def tls_files(state: Path = STATE) -> tuple[Path, Path]:
    """pebble's own serving key and certificate (for its LAN address), made once with openssl."""
    key, cert = state / "tls.key", state / "tls.crt"
    if not (key.exists() and cert.exists()):
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "3650", "-subj", "/CN=pebble",
                        "-addext", f"subjectAltName=IP:{net.NODE_IPV4},DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=OPENSSL_TIMEOUT_S)
    return key, cert


def config(key: Path, cert: Path) -> dict:
    return {"pebble": {
        "listenAddress": f"{net.NODE_IPV4}:{PORT}",
        "managementListenAddress": f"{net.NODE_IPV4}:{MANAGEMENT_PORT}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": 80,   # HTTP-01 answers come from the ingress controller's address
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
        "retryAfter": {"authz": 1, "order": 1},
        "keyAlgorithm": "ecdsa",
        "profiles": {"default": {"description": "Let's Encrypt's 90 days", "validityPeriod": 7776000}},
    }}


def spec() -> dict:
    """The supervised command line, with the configuration and TLS files written."""
    key, cert = tls_files()
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    CONFIG.write_text(json.dumps(config(key, cert), indent=2))
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"), "env": dict(ENV),
            "argv": [str(binary()), "-config", str(CONFIG), "-dnsserver", bind9.SERVER]}


def _insecure() -> ssl.SSLContext:
    # pebble's serving certificate is self-made; its contents, not its TLS, are what is read.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def _get(url: str, timeout: float = 3) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout, context=_insecure()) as resp:
        return resp.read()


def ready(directory: str = ACME_DIRECTORY) -> bool:
    """The ACME directory answers with its newOrder endpoint."""
    try:
        return "newOrder" in json.loads(_get(directory))
    except (OSError, ValueError):
        return False


def roots(management: str = MANAGEMENT) -> str:
    """The PEM of the root pebble issues under now (new at each start of pebble)."""
    return _get(f"{management}/roots/0").decode()

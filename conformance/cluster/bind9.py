"""The local zone's authoritative DNS server: Debian's bind9, updated over RFC2136 with a TSIG key.

cert-manager's DNS-01 solver writes its `_acme-challenge` TXT records here exactly as it does to
production's DNS (the rfc2136 solver, TSIG-signed), pebble asks it during validation, and tests
add the A records their hosts need. The shape every host-side service of the harness follows:

- start: `spec()`, the supervised command line (`named -g`, in the foreground);
- ready: `ready()`, true once it answers the zone's SOA;
- stop: the supervisor's SIGTERM;
- leaves behind: the zone file and journal under paths.STATE (removed by `cluster down`), its
  configuration under paths.RUN. Records a run writes are removed by the run (RFC2136 deletes)
  or by the sweeper (conformance/outside_dns.py).

It listens on the node's LAN address at port 5353: the LAN resolver (dnsmasq) holds port 53.
The TSIG key is the one the local cluster's issuers carry (manifests/cert-manager/local/), read
from there so that the key lives in one place.
"""
from __future__ import annotations

import base64
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import yaml

from conformance.cluster import network as net
from conformance.cluster import paths

NAME = "bind9"
PORT = 5353
ADDRESS = net.NODE_IPV4
SERVER = f"{ADDRESS}:{PORT}"
PORTS = {PORT: "bind9 (the pcf.test zone, RFC2136 updates)"}
READY_S = 20
PACKAGES = ("bind9", "bind9-dnsutils")
BINARY = "/usr/sbin/named"
ZONE = "pcf.test"
KEY_NAME = "pcf-tsig"
KEY_ALGORITHM = "hmac-sha256"
KEY_MANIFEST = paths.MANIFESTS / "cert-manager" / "local" / "tsig-secret.yaml"
STATE = paths.STATE / "bind9"
CONFIG = paths.RUN / "bind9" / "named.conf"
# The key for the suite's own record writes and the sweeper (the local profile names this file).
SECRET_FILE = STATE / "tsig.secret"


def tsig_secret(manifest: Path = KEY_MANIFEST) -> str:
    """The zone's TSIG secret (base64, as bind9 and cert-manager spell it), from the issuers' Secret."""
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "Secret":
            data = doc.get("stringData") or {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
            return data["tsig-secret"]
    raise ValueError(f"{manifest} holds no Secret with key tsig-secret")


def zone_file(serial: int = 1) -> str:
    """The zone as it starts: SOA and NS only; everything else arrives by RFC2136."""
    return (f"$TTL 30\n"
            f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. {serial} 30 30 600 5\n"
            f"@ IN NS ns.{ZONE}.\n"
            f"ns IN A {ADDRESS}\n")


def config(state: Path = STATE, address: str = ADDRESS, port: int = PORT, secret: str | None = None) -> str:
    """named.conf: authoritative only, no recursion, updates and transfers for the key alone."""
    secret = secret or tsig_secret()
    return f"""
key "{KEY_NAME}" {{ algorithm {KEY_ALGORITHM}; secret "{secret}"; }};
options {{
  directory "{state}";
  pid-file "{state}/named.pid";
  listen-on port {port} {{ {address}; }};
  listen-on-v6 {{ none; }};
  recursion no;
  allow-query {{ any; }};
  dnssec-validation no;
}};
controls {{ }};
logging {{ category default {{ default_stderr; }}; category update {{ default_stderr; }}; }};
zone "{ZONE}" {{
  type primary;
  file "{state}/{ZONE}.zone";
  allow-update {{ key "{KEY_NAME}"; }};
  allow-transfer {{ key "{KEY_NAME}"; }};
}};
"""


def spec() -> dict:
    """The supervised command line, with the configuration and (first time) the zone written."""
    STATE.mkdir(parents=True, exist_ok=True)
    zone = STATE / f"{ZONE}.zone"
    if not zone.exists():
        zone.write_text(zone_file())
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    secret = tsig_secret()
    CONFIG.write_text(config(secret=secret))
    SECRET_FILE.write_text(secret + "\n")
    SECRET_FILE.chmod(0o600)
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"),
            "argv": [BINARY, "-g", "-4", "-c", str(CONFIG)]}


def ready(server: str = SERVER) -> bool:
    """bind9 answers the zone's SOA, authoritatively."""
    host, port = server.rsplit(":", 1)
    try:
        answer = dns.query.udp(dns.message.make_query(ZONE, "SOA"), host, port=int(port), timeout=2)
    except (OSError, dns.exception.DNSException):
        return False
    return bool(answer.answer) and bool(answer.flags & dns.flags.AA)

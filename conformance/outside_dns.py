"""A DNS zone updated over RFC2136 (TSIG-signed) as an outside system: the adapter the cleanup
stack and the sweeper drive, and the door tests add their hosts' records through.

Names are fully qualified record names in the zone (`pcf-<run>-<expiry>-web.pcf.test`).
Deleting a name removes every record set at it and at its `_acme-challenge` child, so a
DNS-01 answer a killed cert-manager left behind goes with it. The adapter makes requests only;
the write guard is asked by `conformance.outside.OutsideWrites` and by the sweeper first.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone

from conformance.outside import scopes
from conformance.profile import Profile

TIMEOUT_S = 5.0  # one update or transfer, to an authoritative server on the same network
TTL = 30
ALGORITHMS = {"HMACSHA256": dns.tsig.HMAC_SHA256, "HMACSHA512": dns.tsig.HMAC_SHA512,
              "HMACSHA1": dns.tsig.HMAC_SHA1}


class DnsUpdateError(RuntimeError):
    """An update or transfer the server refused; the message keeps its answer code."""


@dataclass(frozen=True)
class Rfc2136Zone:
    """One zone on one authoritative server, written with one TSIG key."""

    server: str  # host:port
    zone: str
    key_name: str
    secret: str  # base64, as bind9 and cert-manager spell it
    algorithm: str = "HMACSHA256"

    system = "dns"
    kind = "record"

    @property
    def _where(self) -> tuple[str, int]:
        host, _, port = self.server.rpartition(":")
        return host, int(port or 53)

    @property
    def _keyring(self) -> dict:
        return dns.tsigkeyring.from_text({self.key_name: self.secret})

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        host, port = self._where
        answer = dns.query.tcp(update, host, port=port, timeout=TIMEOUT_S)
        if answer.rcode() != dns.rcode.NOERROR:
            raise DnsUpdateError(f"{self.server} refused {what} in zone {self.zone}: "
                                 f"{dns.rcode.to_text(answer.rcode())}")

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self.zone, keyring=self._keyring, keyname=self.key_name,
                                        keyalgorithm=ALGORITHMS[self.algorithm])

    def set_address(self, name: str, address: str) -> None:
        """Make `name` answer `address` (A or AAAA), replacing what it answered before."""
        update = self._update()
        update.replace(dns.name.from_text(name), TTL, "AAAA" if ":" in address else "A", address)
        self._send(update, f"setting {name} to {address}")

    def lookup(self, name: str, rdtype: str = "A") -> tuple[str, ...]:
        """What the server answers for `name` now (no cache between)."""
        host, port = self._where
        answer = dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=TIMEOUT_S)
        return tuple(sorted(r.to_text() for rrset in answer.answer for r in rrset))

    def list_names(self, prefix: str) -> list[str]:
        """Every owner name in the zone (a TSIG-signed transfer), fully qualified without the dot."""
        host, port = self._where
        xfr = dns.query.xfr(host, self.zone, port=port, keyring=self._keyring, keyname=self.key_name,
                            keyalgorithm=ALGORITHMS[self.algorithm], timeout=TIMEOUT_S, lifetime=TIMEOUT_S * 2,
                            relativize=False)
        zone = dns.zone.from_xfr(xfr, relativize=False)
        return sorted({str(n).rstrip(".") for n in zone.nodes} - {self.zone})

    def delete(self, name: str) -> None:
        """Remove every record set at `name` and at its `_acme-challenge` child."""
        update = self._update()
        for owner in (name, f"_acme-challenge.{name}"):
            update.delete(dns.name.from_text(owner))
        self._send(update, f"deleting {name}")


def from_profile(profile: Profile) -> Rfc2136Zone | None:
    """The sweeper's adapter: the profile's RFC2136 server and key name, the secret from
    $PCF_TSIG_SECRET or the profile's tsig_secret_file; None when cert-manager is not claimed or
    any of them is missing."""
    cm, scope = profile.components.cert_manager, scopes(profile).get("dns")
    if not (cm and cm.claimed and scope and scope.zone and cm.rfc2136_server and cm.tsig_key_name):
        return None
    secret = os.environ.get("PCF_TSIG_SECRET")
    if not secret and cm.tsig_secret_file and Path(cm.tsig_secret_file).is_file():
        secret = Path(cm.tsig_secret_file).read_text().strip()
    if not secret:
        return None
    return Rfc2136Zone(cm.rfc2136_server, scope.zone, cm.tsig_key_name, secret, cm.tsig_algorithm)

"""An HTTP or HTTPS request from the outside host to one address, with the Host and SNI a user's
browser would send, and what came back: status, Location, body, and the certificate served.

LoadBalancer and ingress promises are about the address a user reaches, so the connection goes
to the address itself (no DNS, which a test cannot make answer from the outside) and the name
travels in the Host header and the TLS SNI. The certificate is captured, not verified, so that
a wrong one is shown rather than hidden behind a handshake error; the test compares it.
On the local cluster the client runs inside the profile's network namespace on the LAN:

    python -m conformance.probes.outside_http --address 192.168.77.200 --host www.pcf.test --tls
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

NETNS_MARGIN_S = 5  # python start-up inside the namespace, on top of the request's own limit
BODY_LIMIT = 65536


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the outside client saw them."""

    address: str
    port: int
    host: str | None  # Host header (and SNI for HTTPS); None sends the address
    path: str
    tls: bool
    where: str  # "netns pcf-outside" or "runner"
    status: int | None
    location: str | None
    body: str
    served_names: tuple[str, ...]  # the served certificate's DNS names (SAN, else CN)
    served_sha256: str | None
    error: str | None
    elapsed_ms: float

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        hostport = f"[{self.address}]" if ":" in self.address else self.address
        default = 443 if self.tls else 80
        return f"{scheme}://{hostport}{'' if self.port == default else f':{self.port}'}{self.path}"

    def __str__(self) -> str:
        asked = f"{self.url} (Host{'/SNI' if self.tls else ''} {self.host or '-'}) from {self.where}"
        if not self.answered:
            return f"GET {asked}: no answer ({self.error})"
        got = f"HTTP {self.status}"
        if self.location:
            got += f" -> {self.location}"
        got += f" {self.body.strip()[:80]!r}"
        if self.tls:
            got += f", certificate for {list(self.served_names)}"
        return f"GET {asked}: {got}"


def _names(der: bytes) -> tuple[str, ...]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return tuple(a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME))


def request(address: str, host: str | None = None, path: str = "/", tls: bool = False, port: int | None = None,
            timeout_s: float = 3.0, where: str = "runner") -> Exchange:
    """GET `path` from `address` from this process, naming `host` in Host (and SNI)."""
    port = port or (443 if tls else 80)
    t0 = time.monotonic()
    names: tuple[str, ...] = ()
    digest = None

    def done(status=None, location=None, body="", error=None) -> Exchange:
        return Exchange(address, port, host, path, tls, where, status, location, body, names, digest, error,
                        (time.monotonic() - t0) * 1000)

    try:
        sock = socket.create_connection((address, port), timeout=timeout_s)
    except OSError as exc:
        return done(error=f"{type(exc).__name__}: {exc}")
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # captured and compared, not trusted
            sni = host if host and not _is_ip(host) else None
            sock = ctx.wrap_socket(sock, server_hostname=sni)
            der = sock.getpeercert(binary_form=True)
            if der:
                names, digest = _names(der), hashlib.sha256(der).hexdigest()
        conn = http.client.HTTPConnection(address, port, timeout=timeout_s)
        conn.sock = sock
        conn.request("GET", path, headers={"Host": host or address, "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT).decode(errors="replace")
        return done(resp.status, resp.getheader("Location"), body)
    except (OSError, http.client.HTTPException) as exc:
        return done(error=f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def request_from(origin: str, netns: str | None, address: str, host: str | None = None, path: str = "/",
                 tls: bool = False, port: int | None = None, timeout_s: float = 3.0) -> Exchange:
    """The same request from the profile's outside origin: inside `netns`, or from the runner."""
    if origin == "runner":
        return request(address, host, path, tls, port, timeout_s)
    where = f"netns {netns}"
    argv = ["ip", "netns", "exec", str(netns), sys.executable, "-m", "conformance.probes.outside_http",
            "--address", address, "--path", path, "--timeout", str(timeout_s), "--where", where]
    argv += (["--host", host] if host else []) + (["--tls"] if tls else []) + (["--port", str(port)] if port else [])
    t0 = time.monotonic()

    def failed(error: str) -> Exchange:
        return Exchange(address, port or (443 if tls else 80), host, path, tls, where, None, None, "", (), None,
                        error, (time.monotonic() - t0) * 1000)

    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + NETNS_MARGIN_S)
    except subprocess.TimeoutExpired:
        return failed(f"the client in {where} did not finish within {timeout_s + NETNS_MARGIN_S:g} s")
    try:
        raw = json.loads(proc.stdout.strip().splitlines()[-1])
        return Exchange(**{**raw, "served_names": tuple(raw["served_names"])})
    except (IndexError, ValueError, TypeError, KeyError):
        return failed(f"the client in {where} failed (exit {proc.returncode}): "
                      f"{(proc.stderr or proc.stdout).strip()[-300:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.probes.outside_http",
                                     description="GET from one address and print the evidence as one JSON line.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--host", help="Host header and TLS SNI (default: the address)")
    parser.add_argument("--path", default="/")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--where", default="runner", help="how to name this vantage point in the evidence")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(request(args.address, args.host, args.path, args.tls, args.port, args.timeout,
                                    args.where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

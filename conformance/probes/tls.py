"""A TLS handshake and an HTTPS GET from where users stand, with the served certificate as evidence.

Two handshakes go to the same address with the same SNI: one that accepts anything, to read
what the server sends (the leaf certificate) and get its HTTP answer, and one that verifies as a
client would (the chain to the issuer's roots, and the host name), so a failure says both what
was served and why a client refuses it. On the local cluster it runs inside the outside host's
network namespace, like the plain GET of conformance.probes.outside:

    python -m conformance.probes.tls --address 192.168.77.240 --host web.pcf.test --roots roots.pem
"""
from __future__ import annotations

import argparse
import json
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

NETNS_MARGIN_S = 5


@dataclass(frozen=True)
class ServedTLS:
    """What one server sent for one host name, and whether a verifying client accepts it."""

    address: str
    port: int
    host: str
    where: str
    leaf_pem: str  # empty when no handshake completed
    verify_error: str | None  # None: the chain and the name verified against the roots given
    status: int | None
    body: str
    error: str | None  # the handshake or request failed outright
    elapsed_ms: float

    @property
    def verified(self) -> bool:
        return bool(self.leaf_pem) and self.verify_error is None

    def __str__(self) -> str:
        if not self.leaf_pem:
            return f"TLS to {self.address}:{self.port} (SNI {self.host}) from {self.where}: no handshake ({self.error})"
        trust = "verified" if self.verify_error is None else f"refused by a verifying client: {self.verify_error}"
        answer = f"HTTP {self.status} {self.body.strip()[:80]!r}" if self.status else f"no HTTP answer ({self.error})"
        return f"TLS to {self.address}:{self.port} (SNI {self.host}) from {self.where}: {trust}; {answer}"


def _connect(address: str, port: int, host: str, ctx: ssl.SSLContext, timeout_s: float) -> ssl.SSLSocket:
    raw = socket.create_connection((address, port), timeout=timeout_s)
    try:
        return ctx.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def _http(sock: ssl.SSLSocket, host: str, path: str) -> tuple[int, str]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: pcf-tls\r\n\r\n".encode())
    data = b""
    while len(data) < 65536:
        chunk = sock.recv(8192)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def handshake(address: str, host: str, port: int = 443, roots: str | None = None, path: str = "/",
              timeout_s: float = 5.0, where: str = "runner") -> ServedTLS:
    """Both handshakes from this process; `roots` is a PEM file (None: the system store)."""
    t0 = time.monotonic()
    loose = ssl.create_default_context()
    loose.check_hostname, loose.verify_mode = False, ssl.CERT_NONE
    leaf, status, body, error = "", None, "", None
    try:
        with _connect(address, port, host, loose, timeout_s) as sock:
            der = sock.getpeercert(binary_form=True)
            leaf = ssl.DER_cert_to_PEM_cert(der) if der else ""
            try:
                status, body = _http(sock, host, path)
            except (OSError, ValueError, IndexError) as exc:
                error = f"HTTP request: {type(exc).__name__}: {exc}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    verify_error = error if not leaf else None
    if leaf:
        strict = ssl.create_default_context(cafile=roots) if roots else ssl.create_default_context()
        try:
            with _connect(address, port, host, strict, timeout_s):
                pass
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc.verify_message or str(exc)
        except OSError as exc:
            verify_error = f"{type(exc).__name__}: {exc}"
    return ServedTLS(address, port, host, where, leaf, verify_error, status, body, error,
                     (time.monotonic() - t0) * 1000)


def handshake_from(origin: str, netns: str | None, address: str, host: str, port: int = 443,
                   roots: str | None = None, path: str = "/", timeout_s: float = 5.0) -> ServedTLS:
    """The same, from the profile's outside origin: inside `netns`, or from the runner."""
    if origin == "runner":
        return handshake(address, host, port, roots, path, timeout_s)
    where = f"netns {netns}"
    argv = ["ip", "netns", "exec", str(netns), sys.executable, "-m", "conformance.probes.tls",
            "--address", address, "--host", host, "--port", str(port), "--path", path,
            "--timeout", str(timeout_s), "--where", where] + (["--roots", roots] if roots else [])
    t0 = time.monotonic()
    limit = 2 * timeout_s + NETNS_MARGIN_S
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return ServedTLS(address, port, host, where, "", None, None, "",
                         f"the client in {where} did not finish within {limit:g} s", (time.monotonic() - t0) * 1000)
    try:
        return ServedTLS(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        return ServedTLS(address, port, host, where, "", None, None, "",
                         f"the client in {where} failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-300:]}", (time.monotonic() - t0) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.probes.tls",
                                     description="TLS handshakes and a GET; prints the evidence as one JSON line.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--host", required=True, help="SNI and Host header")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--roots", help="PEM file of the roots a verifying client trusts (default: the system store)")
    parser.add_argument("--path", default="/")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--where", default="runner")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(handshake(args.address, args.host, args.port, args.roots, args.path,
                                      args.timeout, args.where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

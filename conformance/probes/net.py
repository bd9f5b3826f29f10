"""In-cluster traffic: an HTTP exchange from a probe pod to an address, with the evidence.

The client is busybox `nc` inside the probe pod, fed a literal HTTP/1.0 request, under a hard
`timeout`: it shows whether a TCP connection opened, what answered (agnhost's /hostname names
the serving pod, which proves which backend a Service picked) and how it failed otherwise
(refused, unreachable, or silently dropped, which is what a NetworkPolicy does).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kubernetes import client as k8s

from conformance.pods import PodView, exec_in, parse_http

CONNECT_LIMIT_S = 3  # a dropped SYN is retried for minutes; a blocked connection shows within this
EXEC_MARGIN_S = 8


@dataclass(frozen=True)
class HttpReply:
    """One HTTP GET from a pod, as the client saw it."""

    where: str  # the client: namespace/pod on node
    target: str  # host:port
    path: str
    status: int | None
    body: str
    error: str | None  # how it failed: "timed out", "Connection refused", "No route to host", ...
    elapsed_ms: float  # round trip of the exec, an upper bound of the exchange
    raw: str

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def blocked(self) -> bool:
        """No answer because nothing came back (a dropped or refused connection)."""
        return self.status is None

    def __str__(self) -> str:
        got = f"HTTP {self.status} {self.body.strip()[:80]!r}" if self.answered else f"no answer ({self.error})"
        return f"GET http://{self.target}{self.path} from {self.where}: {got}"


def http_get(api: k8s.ApiClient, client: PodView, host: str, port: int, path: str = "/hostname",
             connect_limit_s: int = CONNECT_LIMIT_S) -> HttpReply:
    """GET http://host:port/path from the client pod (no DNS unless `host` is a name)."""
    script = (f'printf "GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n" '
              f"| timeout {connect_limit_s + 2} nc -w {connect_limit_s} {host} {port}")
    res = exec_in(api, client.namespace, client.name, ["sh", "-c", script],
                  timeout_s=connect_limit_s + EXEC_MARGIN_S)
    status, body = parse_http(res.stdout)
    error = None
    if status is None:
        text = (res.stderr.strip().splitlines() or [""])[-1].removeprefix("nc: ")
        error = text or ("timed out" if res.exit_code in (124, 143) else f"exit {res.exit_code}, no response")
    target = f"[{host}]:{port}" if _is_v6(host) else f"{host}:{port}"
    return HttpReply(client.where, target, path, status, body, error, res.elapsed_s * 1000,
                     res.stdout + res.stderr)


def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def family(ip: str) -> str:
    """"IPv4" or "IPv6"."""
    return f"IPv{ipaddress.ip_address(ip).version}"

"""Control-plane probes: health endpoints, the API endpoint, nodes, serving certificates, kube-proxy.

All of them only read. Health checks read `/livez?verbose` and `/readyz?verbose`, whose lines
name each check, so a failure names the check rather than "not ready". Serving certificates are
read from a TLS handshake with the server itself (the API endpoint, and each kubelet at its
node's InternalIP), because what matters is the certificate actually served.
"""
from __future__ import annotations

import copy
import datetime as dt
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from kubernetes import client as k8s

REQUEST_TIMEOUT = (5, 15)
RESOLVE_LIMIT_S = 5.0
TLS_LIMIT_S = 5.0


# --- /livez and /readyz ----------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Health:
    """One verbose health endpoint of the API server."""

    endpoint: str  # /livez or /readyz
    http_status: int | None
    checks: tuple[Check, ...]
    raw: str
    error: str | None

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @property
    def healthy(self) -> bool:
        return self.http_status == 200 and not self.failing and self.error is None


_CHECK_LINE = re.compile(r"^\[([+-])\](\S+)\s*(.*)$")


def health(api: k8s.ApiClient, endpoint: str = "/readyz") -> Health:
    """GET `<endpoint>?verbose` and parse its `[+]name ok` / `[-]name failed: reason` lines."""
    try:
        method, url, headers, body, post = api.param_serialize(
            "GET", endpoint, query_params=[("verbose", "true")], header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"])
        resp = api.call_api(method, url, headers, body, post, _request_timeout=REQUEST_TIMEOUT)
        resp.read()
        text, status = resp.data.decode(errors="replace"), resp.status
    except Exception as exc:  # noqa: BLE001 - an unreachable server is the evidence
        return Health(endpoint, None, (), "", f"{type(exc).__name__}: {exc}")
    checks = []
    for line in text.splitlines():
        m = _CHECK_LINE.match(line.strip())
        if m:
            checks.append(Check(m.group(2), m.group(1) == "+", m.group(3).strip()))
    return Health(endpoint, status, tuple(checks), text, None)


# --- the API endpoint the profile promises ---------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """Whether the profile's API endpoint resolves and answers as the API server."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]
    resolve_ms: float | None
    version: str | None
    answer_ms: float | None
    error: str | None


def resolve(host: str, port: int, limit_s: float = RESOLVE_LIMIT_S) -> tuple[tuple[str, ...], float, str | None]:
    """The host's addresses through the runner's resolver, bounded in time (getaddrinfo is not)."""
    out: dict = {}

    def ask() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            out["addresses"] = tuple(dict.fromkeys(i[4][0] for i in infos))
        except OSError as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"

    t0 = time.monotonic()
    thread = threading.Thread(target=ask, name="pcf-resolve", daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = (time.monotonic() - t0) * 1000
    if thread.is_alive():
        return (), elapsed, f"no answer from the resolver within {limit_s:g} s"
    return out.get("addresses", ()), elapsed, out.get("error")


def endpoint(api: k8s.ApiClient, url: str) -> Endpoint:
    """Resolve the endpoint's host and GET /version there with the suite's own credentials and
    CA, so the server's certificate must also match the endpoint's name."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    addresses, resolve_ms, error = resolve(host, port)
    if error or not addresses:
        return Endpoint(url, host, port, addresses, resolve_ms, None, None, error or "no address")
    conf = copy.deepcopy(api.configuration)
    conf.host = f"{parts.scheme}://{parts.netloc}"
    conf.retries = 0
    probe = k8s.ApiClient(conf)
    probe.default_headers.update(api.default_headers)
    t0 = time.monotonic()
    try:
        version = k8s.VersionApi(probe).get_code(_request_timeout=REQUEST_TIMEOUT).git_version
        return Endpoint(url, host, port, addresses, resolve_ms, version, (time.monotonic() - t0) * 1000, None)
    except Exception as exc:  # noqa: BLE001 - the failure is the evidence
        return Endpoint(url, host, port, addresses, resolve_ms, None, None, f"{type(exc).__name__}: {exc}")
    finally:
        probe.close()


# --- nodes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeFacts:
    name: str
    ready: str  # True, False, Unknown, or "missing" when the node has no Ready condition
    ready_reason: str
    unschedulable: bool
    taints: tuple[str, ...]
    kubelet_version: str
    runtime: str  # containerRuntimeVersion, e.g. containerd://2.2.9 or cri-o://1.33.1
    internal_ips: tuple[str, ...]
    kubelet_port: int
    problems: tuple[str, ...]  # other conditions that are True and should not be (MemoryPressure, ...)

    @property
    def runtime_name(self) -> str:
        return self.runtime.split("://", 1)[0]

    @property
    def runtime_version(self) -> str:
        return self.runtime.split("://", 1)[-1]


def nodes(api: k8s.ApiClient) -> dict[str, NodeFacts]:
    out = {}
    for node in k8s.CoreV1Api(api).list_node(_request_timeout=REQUEST_TIMEOUT).items:
        conds = {c.type: c for c in node.status.conditions or []}
        ready = conds.get("Ready")
        info = node.status.node_info
        endpoints = node.status.daemon_endpoints
        out[node.metadata.name] = NodeFacts(
            name=node.metadata.name,
            ready=ready.status if ready else "missing",
            ready_reason=f"{ready.reason}: {ready.message}" if ready else "no Ready condition",
            unschedulable=bool(node.spec.unschedulable),
            taints=tuple(f"{t.key}={t.value or ''}:{t.effect}" for t in node.spec.taints or []),
            kubelet_version=info.kubelet_version if info else "",
            runtime=info.container_runtime_version if info else "",
            internal_ips=tuple(a.address for a in node.status.addresses or [] if a.type == "InternalIP"),
            kubelet_port=endpoints.kubelet_endpoint.port if endpoints and endpoints.kubelet_endpoint else 10250,
            problems=tuple(f"{t}: {c.reason}: {c.message}" for t, c in conds.items()
                           if t != "Ready" and c.status == "True"))
    return out


def server_version(api: k8s.ApiClient) -> str:
    return k8s.VersionApi(api).get_code(_request_timeout=REQUEST_TIMEOUT).git_version


def minor(version: str) -> tuple[int, int]:
    """(major, minor) of a Kubernetes version such as v1.36.1 or v1.36.0-rc.1+abc."""
    m = re.match(r"^v?(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"{version!r} is not a Kubernetes version")
    return int(m.group(1)), int(m.group(2))


# The kubelet may be up to three minor versions older than the API server and never newer
# (https://kubernetes.io/releases/version-skew-policy/, since 1.28).
KUBELET_MAX_SKEW = 3


def kubelet_skew(server: str, kubelet: str) -> int:
    """How many minor versions the kubelet is behind the server (negative: ahead of it)."""
    (smaj, smin), (kmaj, kmin) = minor(server), minor(kubelet)
    if smaj != kmaj:
        return 1000 if kmaj < smaj else -1000
    return smin - kmin


# --- serving certificates --------------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """The certificate a TLS server presents, read without verifying it."""

    host: str
    port: int
    subject: str | None
    issuer: str | None
    not_after: dt.datetime | None
    names: tuple[str, ...]
    error: str | None

    def days_left(self, at: dt.datetime | None = None) -> float | None:
        if self.not_after is None:
            return None
        at = at or dt.datetime.now(dt.timezone.utc)
        return (self.not_after - at).total_seconds() / 86400

    def __str__(self) -> str:
        if self.error:
            return f"{self.host}:{self.port}: no certificate read ({self.error})"
        return (f"{self.host}:{self.port}: {self.subject}, issued by {self.issuer}, valid until "
                f"{self.not_after:%Y-%m-%d %H:%M} UTC ({self.days_left():.1f} days left)")


def served_certificate(host: str, port: int, limit_s: float = TLS_LIMIT_S) -> Served:
    """Handshake with host:port and read the leaf certificate it serves."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we read the certificate; trusting it is another promise
    try:
        with socket.create_connection((host, port), timeout=limit_s) as raw:
            with ctx.wrap_socket(raw, server_hostname=host if not _is_ip(host) else None) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return Served(host, port, None, None, None, (), f"{type(exc).__name__}: {exc}")
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    return Served(host, port, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                  cert.not_valid_after_utc, names, None)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


# --- kube-proxy ------------------------------------------------------------------------------

@dataclass(frozen=True)
class KubeProxyFound:
    """Workloads that run kube-proxy, anywhere in the cluster."""

    daemonsets: tuple[str, ...]  # namespace/name
    pods: tuple[str, ...]


def kube_proxy(api: k8s.ApiClient) -> KubeProxyFound:
    """DaemonSets and pods named or labelled as kube-proxy (kubeadm labels k8s-app=kube-proxy)."""
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    sets = [d for d in apps.list_daemon_set_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items
            if d.metadata.name == "kube-proxy" or (d.metadata.labels or {}).get("k8s-app") == "kube-proxy"]
    pods = core.list_pod_for_all_namespaces(label_selector="k8s-app=kube-proxy", _request_timeout=REQUEST_TIMEOUT).items
    return KubeProxyFound(tuple(f"{d.metadata.namespace}/{d.metadata.name}" for d in sets),
                          tuple(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods))

"""Vault probes: seal status and health without a token, the HA leader, and the suite's own login.

Read-only checks use only the unauthenticated endpoints (`sys/seal-status`, `sys/health`,
`sys/leader`), so a read-only run needs no Vault credential at all. A full run logs in through
Kubernetes auth as the ServiceAccount the profile names for the suite (its token comes from a
TokenRequest, valid for minutes, never stored) and gets a Vault token whose policy allows only
the run prefix. Tokens and values never leave this module in a printable form: the dataclasses
hold facts (sealed, policies, status codes), the token lives in a `Login` whose repr hides it.
Vault and OpenBao answer these endpoints alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from kubernetes import client as k8s

from conformance.evidence import redact_text
from conformance.profile import Profile

# connect, read; in seconds. One round trip to a healthy server.
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
TOKEN_REQUEST_S = 600  # the shortest ServiceAccount token the API server issues
REQUEST_TIMEOUT = (5, 30)


@dataclass(frozen=True)
class SealStatus:
    """One replica's answer to `sys/seal-status` (or why there was none)."""

    address: str
    initialized: bool | None
    sealed: bool | None
    version: str = ""
    storage: str = ""
    error: str | None = None

    def __str__(self) -> str:
        if self.error:
            return f"{self.address}: no answer ({self.error})"
        return (f"{self.address}: initialized={self.initialized} sealed={self.sealed} "
                f"version={self.version} storage={self.storage}")


@dataclass(frozen=True)
class Leader:
    """`sys/leader` as one server sees it."""

    address: str
    ha_enabled: bool | None
    is_self: bool | None
    leader_address: str
    error: str | None = None

    def __str__(self) -> str:
        if self.error:
            return f"{self.address}: no answer ({self.error})"
        return (f"{self.address}: ha_enabled={self.ha_enabled} is_self={self.is_self} "
                f"leader_address={self.leader_address or '(none)'}")


@dataclass(frozen=True)
class Login:
    """A Vault token from a Kubernetes auth login, with what Vault said about it."""

    address: str
    role: str
    status: int
    policies: tuple[str, ...] = ()
    ttl_s: int = 0
    error: str | None = None
    token: str = field(default="", repr=False)

    def __str__(self) -> str:
        if self.error:
            return f"login to {self.address} with role {self.role!r} failed ({self.status}): {self.error}"
        return f"login to {self.address} with role {self.role!r}: policies {list(self.policies)}, ttl {self.ttl_s} s"


@dataclass(frozen=True)
class Access:
    """What one request with the suite's token was answered (capabilities in practice)."""

    verb: str
    path: str
    status: int
    error: str = ""

    @property
    def allowed(self) -> bool:
        return self.status < 400

    def __str__(self) -> str:
        return f"{self.verb} {self.path}: {self.status}" + (f" ({self.error})" if self.error else "")


def _errors(response: httpx.Response) -> str:
    try:
        return redact_text("; ".join(response.json().get("errors") or []) or response.text[:300])
    except ValueError:
        return redact_text(response.text[:300])


def seal_status(address: str) -> SealStatus:
    address = address.rstrip("/")
    try:
        r = httpx.get(f"{address}/v1/sys/seal-status", timeout=TIMEOUT)
        r.raise_for_status()
        body = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        return SealStatus(address, None, None, error=f"{type(exc).__name__}: {exc}")
    return SealStatus(address, body.get("initialized"), body.get("sealed"), body.get("version", ""),
                      body.get("storage_type", ""))


def leader(address: str) -> Leader:
    address = address.rstrip("/")
    try:
        r = httpx.get(f"{address}/v1/sys/leader", timeout=TIMEOUT)
        if r.status_code >= 400:
            return Leader(address, None, None, "", error=f"{r.status_code}: {_errors(r)}")
        body = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Leader(address, None, None, "", error=f"{type(exc).__name__}: {exc}")
    return Leader(address, body.get("ha_enabled"), body.get("is_self"), body.get("leader_address") or "")


def address_of(profile: Profile) -> str:
    """Where the runner reaches Vault: the external address, else the in-cluster one."""
    section = profile.components.vault
    return (section.external_address or section.address or "").rstrip("/")


def service_account_token(api: k8s.ApiClient, namespaced_name: str, audience: str | None = None) -> str:
    """A short-lived token of `namespace/name` from a TokenRequest (nothing is stored)."""
    namespace, _, name = namespaced_name.partition("/")
    spec: dict = {"expirationSeconds": TOKEN_REQUEST_S}
    if audience:
        spec["audiences"] = [audience]
    answer = k8s.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        _request_timeout=REQUEST_TIMEOUT)
    return answer.status.token


def login(address: str, auth_path: str, role: str, jwt: str) -> Login:
    """Log in through Kubernetes auth at `auth_path` (e.g. auth/kubernetes)."""
    address = address.rstrip("/")
    try:
        r = httpx.post(f"{address}/v1/{auth_path.strip('/')}/login", json={"role": role, "jwt": jwt},
                       timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return Login(address, role, 0, error=f"{type(exc).__name__}: {exc}")
    if r.status_code >= 400:
        return Login(address, role, r.status_code, error=_errors(r))
    auth = r.json().get("auth") or {}
    return Login(address, role, r.status_code, tuple(sorted(auth.get("token_policies") or ())),
                 int(auth.get("lease_duration") or 0), token=auth.get("client_token", ""))


def request(address: str, token: str, verb: str, path: str, body: dict | None = None) -> Access:
    """One API request with `token`; only its status and Vault's error words are kept."""
    method = {"read": "GET", "write": "POST", "list": "LIST", "delete": "DELETE"}[verb]
    try:
        r = httpx.request(method, f"{address.rstrip('/')}/v1/{path}", headers={"X-Vault-Token": token},
                          json=body, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return Access(verb, path, 0, f"{type(exc).__name__}: {exc}")
    return Access(verb, path, r.status_code, _errors(r) if r.status_code >= 400 else "")


@dataclass(frozen=True)
class Mount:
    """A mount as a token with access below it sees it (`sys/internal/ui/mounts/<path>`)."""

    path: str
    status: int
    type: str = ""
    version: str = ""
    error: str = ""

    def __str__(self) -> str:
        return (f"mount {self.path}: {self.status} type={self.type or '-'} version={self.version or '-'}"
                + (f" ({self.error})" if self.error else ""))


def mount(address: str, token: str, path: str) -> Mount:
    try:
        r = httpx.get(f"{address.rstrip('/')}/v1/sys/internal/ui/mounts/{path.strip('/')}",
                      headers={"X-Vault-Token": token}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return Mount(path, 0, error=f"{type(exc).__name__}: {exc}")
    if r.status_code >= 400:
        return Mount(path, r.status_code, error=_errors(r))
    data = r.json().get("data") or {}
    return Mount(path, r.status_code, data.get("type", ""), str((data.get("options") or {}).get("version", "")))


@dataclass(frozen=True)
class RaftPeers:
    """The Raft configuration's voters, as the suite's token may read it."""

    status: int
    voters: tuple[str, ...] = ()
    error: str = ""


def raft_peers(address: str, token: str) -> RaftPeers:
    try:
        r = httpx.get(f"{address.rstrip('/')}/v1/sys/storage/raft/configuration",
                      headers={"X-Vault-Token": token}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return RaftPeers(0, error=f"{type(exc).__name__}: {exc}")
    if r.status_code >= 400:
        return RaftPeers(r.status_code, error=_errors(r))
    servers = ((r.json().get("data") or {}).get("config") or {}).get("servers") or []
    return RaftPeers(r.status_code, tuple(s.get("node_id", "") for s in servers if s.get("voter")))

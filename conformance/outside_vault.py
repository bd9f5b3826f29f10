"""Vault KV v2 as an outside system: the adapter the cleanup stack and the sweeper drive.

Names are logical KV paths, `<mount>/<path>` (as a VaultSecret's `spec.path` spells them); the
adapter maps them to the API's `data/` and `metadata/` paths. Deleting removes the metadata,
so every version goes. An ACL policy a run writes (e.g. one that denies a path, to prove the
operator's failure) carries the same kind of name, so the guard, the cleanup and the sweeper
treat it as they treat the run's paths: deleting a name removes a policy of that name too. The adapter makes requests only; the write guard is asked by
`conformance.outside.OutsideWrites` and by the sweeper before any write reaches it.
"""
from __future__ import annotations

import os

import httpx

from conformance.cluster import openbao
from conformance.outside import scopes
from conformance.profile import Profile

# connect, read; in seconds. A KV request is one round trip to a healthy Vault.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class VaultError(RuntimeError):
    """A request Vault answered with an error; the message keeps Vault's own words."""

    def __init__(self, method: str, url: str, response: httpx.Response):
        self.status = response.status_code
        super().__init__(f"{method} {url} answered {response.status_code}: {response.text[:500]}")


class VaultKV:
    """One KV v2 mount of one Vault, reached with one token."""

    system = "vault"
    kind = "KV path"

    def __init__(self, address: str, token: str, mount: str, client: httpx.Client | None = None):
        self.address, self.mount = address.rstrip("/"), mount.strip("/")
        self.client = client or httpx.Client(timeout=TIMEOUT)
        self.client.headers["X-Vault-Token"] = token

    def _path(self, name: str) -> str:
        head, _, rest = name.strip("/").partition("/")
        if head != self.mount or not rest:
            raise ValueError(f"{name!r} is not a path in the KV mount {self.mount!r}")
        return rest

    def _call(self, method: str, api: str, path: str, json: dict | None = None) -> dict | None:
        """One request; None when Vault has nothing there (404)."""
        url = f"{self.address}/v1/{self.mount}/{api}/{path}"
        response = self.client.request(method, url, json=json)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise VaultError(method, url, response)
        return response.json() if response.content else {}

    def put(self, name: str, data: dict[str, str]) -> int:
        """Write a new version of `name`; returns its version number."""
        answer = self._call("POST", "data", self._path(name), {"data": data}) or {}
        return int((answer.get("data") or {}).get("version", 0))

    def read(self, name: str) -> dict[str, str] | None:
        """The newest version's data, or None when the path holds nothing."""
        answer = self._call("GET", "data", self._path(name))
        return None if answer is None else (answer.get("data") or {}).get("data")

    def keys(self, folder: str) -> list[str]:
        """The keys directly in `folder` (a name ending in '/'); sub-folders end in '/'."""
        answer = self._call("LIST", "metadata", self._path(folder))
        return [] if answer is None else list((answer.get("data") or {}).get("keys") or [])

    def list_names(self, prefix: str) -> list[str]:
        """Names directly under the folder `prefix` (a sub-folder is listed as its name, once,
        also when a key of the same name exists), then the policies whose names start with it."""
        paths = [prefix + key.rstrip("/") for key in self.keys(prefix)]
        return list(dict.fromkeys(paths + [p for p in self.policies() if p.startswith(prefix)]))

    def policies(self) -> list[str]:
        """Every ACL policy name (listing needs a token allowed to, e.g. the sweeper's)."""
        response = self.client.request("LIST", f"{self.address}/v1/sys/policies/acl")
        if response.status_code in (403, 404):
            return []
        if response.status_code >= 400:
            raise VaultError("LIST", f"{self.address}/v1/sys/policies/acl", response)
        return list((response.json().get("data") or {}).get("keys") or [])

    def put_policy(self, name: str, hcl: str) -> None:
        url = f"{self.address}/v1/sys/policies/acl/{name.strip('/')}"
        response = self.client.put(url, json={"policy": hcl})
        if response.status_code >= 400:
            raise VaultError("PUT", url, response)

    def delete(self, name: str) -> None:
        """Remove `name` with every version, everything below it when it is a folder, and a
        policy of that name."""
        for key in self.keys(name.rstrip("/") + "/"):
            self.delete(f"{name.rstrip('/')}/{key}")
        self._call("DELETE", "metadata", self._path(name))
        url = f"{self.address}/v1/sys/policies/acl/{name.strip('/')}"
        response = self.client.delete(url)
        if response.status_code >= 400 and response.status_code not in (403, 404):
            raise VaultError("DELETE", url, response)


def local_token(profile: Profile) -> str | None:
    """On the local cluster, the token its harness keeps for the OpenBao it runs (readable by
    root alone); None elsewhere."""
    vault = profile.components.vault
    if not (vault and vault.server == "openbao" and vault.external_address == openbao.ADDRESS):
        return None
    try:
        return openbao.root_token()
    except (OSError, KeyError, ValueError):
        return None


def from_profile(profile: Profile) -> VaultKV | None:
    """The sweeper's adapter: Vault's address from $VAULT_ADDR or the profile's external
    address, the token from $VAULT_TOKEN (on the local cluster, its harness's token); None when
    either is missing or no prefix is allowed."""
    vault, scope = profile.components.vault, scopes(profile).get("vault")
    address = os.environ.get("VAULT_ADDR") or (vault.external_address if vault else None)
    token = os.environ.get("VAULT_TOKEN") or local_token(profile)
    if not (scope and address and token):
        return None
    mount = vault.kv_mount if vault and vault.kv_mount else scope.prefix.split("/", 1)[0]
    return VaultKV(address, token, mount)

"""Secrets synced from Vault: one small adapter per operator kind, one set of promises.

The promises (suites/test_secret_sync.py) are the same whichever operator the profile names
(`components.vault_secrets.operator`); an adapter knows how to write that operator's sync object
and how to read its state:

- `ExternalSecrets`: External Secrets Operator (kind ExternalSecret, external-secrets.io/v1),
  reading through the ClusterSecretStore the profile names; it re-reads Vault every
  `spec.refreshInterval` (0 = never).
- `Ricoberger`: ricoberger's vault-secrets-operator (kind VaultSecret, ricoberger.de/v1alpha1),
  production's operator; it re-reads Vault every VAULT_RECONCILIATION_TIME seconds, set on its
  Deployment (0 or unset = never). Its states are read from the object shapes its documentation
  describes (condition `SecretCreated`).

Values never leave as text: a synced Secret is seen as digests of its values
(conformance.evidence.secret_digests), so a test compares digests and a failure shows digests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from conformance.components import CustomKind
from conformance.evidence import SecretDigest, digest, redact_text, secret_digests
from conformance.pods import exec_in
from conformance.probes import vault
from conformance.profile import Profile, VaultSecrets

REQUEST_TIMEOUT = (5, 30)
OPERATORS = ("external-secrets", "ricoberger")
NEVER = ("0", "0s", "")


@dataclass(frozen=True)
class SyncState:
    """What a sync object says about itself: synced, failing with the operator's reason, or neither yet."""

    kind: str
    namespace: str
    name: str
    ready: bool | None  # None: the operator has not reported on it (yet)
    reason: str = ""
    message: str = ""
    generation_seen: bool = True  # the operator has reported on the newest spec
    secret: str = ""  # the Secret it syncs into (its own name unless the spec says otherwise)

    @property
    def error(self) -> bool:
        return self.ready is False

    def __str__(self) -> str:
        state = {True: "synced", False: "error", None: "no condition yet"}[self.ready]
        words = f" ({self.reason}: {self.message})" if self.reason or self.message else ""
        return f"{self.kind} {self.namespace}/{self.name}: {state}{words}"


@dataclass(frozen=True)
class RefreshSetting:
    """How often the operator re-reads Vault on its own, and where that is set."""

    setting: str  # e.g. "ExternalSecret spec.refreshInterval" or "env VAULT_RECONCILIATION_TIME"
    value: str

    @property
    def never(self) -> bool:
        return self.value.strip() in NEVER

    def __str__(self) -> str:
        return f"{self.setting}={self.value or '(unset)'}"


class Adapter(Protocol):
    """What the promises need from one operator kind."""

    operator: str
    kind: CustomKind

    def manifest(self, name: str, namespace: str, path: str, keys: Iterable[str] = (),
                 templates: Mapping[str, str] | None = None) -> dict:
        """A sync object `name` syncing KV v2 `path` (`<mount>/<path>`) into the Secret `name`;
        `keys` selects a subset, `templates` adds keys rendered from the Vault keys (written
        in Go template form `{{ .key }}`, which each adapter turns into its own syntax)."""

    def state(self, obj: dict) -> SyncState:
        """The object's own account of its sync."""

    def refresh(self, obj: dict | None, deployment: dict | None) -> RefreshSetting:
        """The setting that makes the operator re-read Vault, from the sync object or the
        operator's Deployment."""


def _conditions(obj: dict) -> list[dict]:
    return list(((obj.get("status") or {}).get("conditions")) or [])


def _condition(obj: dict, kind: str, ctype: str, secret: str | None = None) -> SyncState:
    meta = obj.get("metadata") or {}
    secret = secret or meta.get("name", "")
    found = next((c for c in _conditions(obj) if c.get("type") == ctype), None)
    seen = (obj.get("status") or {}).get("observedGeneration") or (found or {}).get("observedGeneration")
    fresh = seen is None or seen >= (meta.get("generation") or 0)
    if found is None:
        return SyncState(kind, meta.get("namespace", ""), meta.get("name", ""), None, generation_seen=fresh,
                         secret=secret)
    ready = {"True": True, "False": False}.get(str(found.get("status")))
    return SyncState(kind, meta.get("namespace", ""), meta.get("name", ""), ready, found.get("reason") or "",
                     redact_text(found.get("message") or ""), fresh, secret)


_GO_KEY = re.compile(r"\{\{\s*\.([A-Za-z0-9_]+)\s*\}\}")


class ExternalSecrets:
    """External Secrets Operator: ExternalSecret through a ClusterSecretStore."""

    operator = "external-secrets"
    kind = CustomKind("external-secrets.io", "v1", "externalsecrets", "ExternalSecret")
    store_kind = CustomKind("external-secrets.io", "v1", "clustersecretstores", "ClusterSecretStore",
                            namespaced=False)

    def __init__(self, store: str, refresh_interval: str, mount: str):
        self.store, self.refresh_interval, self.mount = store, refresh_interval, mount.strip("/")

    def _key(self, path: str) -> str:
        head, _, rest = path.strip("/").partition("/")
        if head != self.mount or not rest:
            raise ValueError(f"{path!r} is not a path in the KV mount {self.mount!r}")
        return rest  # the store names the mount; remoteRef keys are paths inside it

    def manifest(self, name, namespace, path, keys=(), templates=None) -> dict:
        key = self._key(path)
        spec: dict = {"refreshInterval": self.refresh_interval,
                      "secretStoreRef": {"kind": "ClusterSecretStore", "name": self.store},
                      "target": {"name": name, "creationPolicy": "Owner"}}
        keys = list(keys)
        if keys:
            spec["data"] = [{"secretKey": k, "remoteRef": {"key": key, "property": k}} for k in keys]
        else:
            spec["dataFrom"] = [{"extract": {"key": key}}]
        if templates:
            spec["target"]["template"] = {"engineVersion": "v2", "mergePolicy": "Merge",
                                          "data": dict(templates)}
        return {"apiVersion": self.kind.api_version, "kind": self.kind.kind,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}

    def state(self, obj: dict) -> SyncState:
        target = ((obj.get("spec") or {}).get("target") or {}).get("name")
        return _condition(obj, self.kind.kind, "Ready", target)

    def refresh(self, obj, deployment) -> RefreshSetting:
        value = ((obj or {}).get("spec") or {}).get("refreshInterval")
        return RefreshSetting("ExternalSecret spec.refreshInterval",
                              str(value if value is not None else self.refresh_interval))

    def store_state(self, obj: dict) -> SyncState:
        return _condition(obj, self.store_kind.kind, "Ready")


class Ricoberger:
    """ricoberger's vault-secrets-operator: VaultSecret, synced into a Secret of the same name."""

    operator = "ricoberger"
    kind = CustomKind("ricoberger.de", "v1alpha1", "vaultsecrets", "VaultSecret")
    RECONCILE_ENV = "VAULT_RECONCILIATION_TIME"

    def manifest(self, name, namespace, path, keys=(), templates=None) -> dict:
        spec: dict = {"path": path.strip("/"), "type": "Opaque", "keys": list(keys)}
        if templates:
            # Its templates see the Vault keys under .Secrets (Go templates, like Helm's).
            spec["templates"] = {k: _GO_KEY.sub(r"{{ .Secrets.\1 }}", v) for k, v in templates.items()}
        return {"apiVersion": self.kind.api_version, "kind": self.kind.kind,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}

    def state(self, obj: dict) -> SyncState:
        return _condition(obj, self.kind.kind, "SecretCreated")

    def refresh(self, obj, deployment) -> RefreshSetting:
        containers = (((((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {})
                      .get("containers") or [])
        for c in containers:
            for env in c.get("env") or []:
                if env.get("name") == self.RECONCILE_ENV:
                    return RefreshSetting(f"Deployment env {self.RECONCILE_ENV}", str(env.get("value") or ""))
        return RefreshSetting(f"Deployment env {self.RECONCILE_ENV} (unset: the operator's default 0, never)", "")


def adapter(profile: Profile) -> Adapter:
    section: VaultSecrets = profile.components.vault_secrets
    if section.operator == "external-secrets":
        return ExternalSecrets(section.store or "", section.refresh_interval or "",
                               profile.components.vault.kv_mount if profile.components.vault else "kvv2")
    return Ricoberger()


# --- reading the cluster -----------------------------------------------------------------------

@dataclass(frozen=True)
class SyncedSecret:
    """A synced Secret as digests of its values, never the values."""

    namespace: str
    name: str
    exists: bool
    digests: Mapping[str, SecretDigest]
    owner: str = ""  # kind/name of the controller owner, when there is one

    def __str__(self) -> str:
        if not self.exists:
            return f"Secret {self.namespace}/{self.name}: absent"
        return f"Secret {self.namespace}/{self.name}: keys {dict(sorted(self.digests.items()))}"


def read_secret(api: k8s.ApiClient, namespace: str, name: str) -> SyncedSecret:
    try:
        secret = k8s.CoreV1Api(api).read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return SyncedSecret(namespace, name, False, {})
        raise
    owners = [f"{o.kind}/{o.name}" for o in (secret.metadata.owner_references or []) if o.controller]
    return SyncedSecret(namespace, name, True, secret_digests({"data": secret.data or {}}),
                        owners[0] if owners else "")


def _custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def read_object(api: k8s.ApiClient, kind: CustomKind, namespace: str | None, name: str) -> dict | None:
    try:
        if kind.namespaced:
            return _custom(api).get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name,
                                                             _request_timeout=REQUEST_TIMEOUT)
        return _custom(api).get_cluster_custom_object(kind.group, kind.version, kind.plural, name,
                                                      _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_objects(api: k8s.ApiClient, kind: CustomKind) -> list[dict]:
    return list(_custom(api).list_cluster_custom_object(kind.group, kind.version, kind.plural,
                                                        _request_timeout=REQUEST_TIMEOUT).get("items") or [])


def crd_served(api: k8s.ApiClient, kind: CustomKind) -> bool:
    try:
        k8s.ApiextensionsV1Api(api).read_custom_resource_definition(kind.crd, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def warnings(api: k8s.ApiClient, namespace: str, name: str, kind: str, last: int = 3) -> tuple[str, ...]:
    """The newest Warning events about one object: the operator's own words for a failure."""
    events = k8s.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={kind},type=Warning",
        _request_timeout=REQUEST_TIMEOUT).items
    events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return tuple(redact_text(f"{e.reason}: {e.message}") for e in events[-last:])


@dataclass(frozen=True)
class OperatorHealth:
    """The operator's Deployment as the cluster reports it."""

    namespace: str
    name: str
    exists: bool
    replicas: int = 0
    ready: int = 0

    @property
    def running(self) -> bool:
        return self.exists and self.ready > 0

    def __str__(self) -> str:
        if not self.exists:
            return f"operator Deployment {self.namespace}/{self.name} does not exist"
        return f"operator Deployment {self.namespace}/{self.name}: {self.ready}/{self.replicas} replicas ready"


def read_deployment(api: k8s.ApiClient, namespace: str, name: str) -> dict | None:
    try:
        d = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return api.sanitize_for_serialization(d)


def operator_health(deployment: dict | None, namespace: str, name: str) -> OperatorHealth:
    if deployment is None:
        return OperatorHealth(namespace, name, False)
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    return OperatorHealth(namespace, name, True, int(spec.get("replicas") or 0), int(status.get("readyReplicas") or 0))


def digests_of(values: Mapping[str, str]) -> dict[str, SecretDigest]:
    """The digests a Secret synced from `values` must show, by key."""
    return secret_digests({"stringData": dict(values)})


# --- one sync, observed --------------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """A sync object's state and its Secret, seen together."""

    state: SyncState | None  # None: the sync object does not exist
    secret: SyncedSecret

    def __str__(self) -> str:
        return f"{self.state or 'sync object absent'}; {self.secret}"


def observe(api: k8s.ApiClient, adapter: Adapter, namespace: str, name: str) -> Observation:
    obj = read_object(api, adapter.kind, namespace, name)
    return Observation(adapter.state(obj) if obj is not None else None, read_secret(api, namespace, name))


def create(api: k8s.ApiClient, adapter: Adapter, manifest: dict) -> dict:
    kind = adapter.kind
    return _custom(api).create_namespaced_custom_object(kind.group, kind.version, manifest["metadata"]["namespace"],
                                                        kind.plural, manifest, _request_timeout=REQUEST_TIMEOUT)


def delete(api: k8s.ApiClient, adapter: Adapter, namespace: str, name: str) -> None:
    kind = adapter.kind
    _custom(api).delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name,
                                                 _request_timeout=REQUEST_TIMEOUT)


def update_spec(api: k8s.ApiClient, adapter: Adapter, namespace: str, name: str, spec: dict) -> None:
    kind = adapter.kind
    _custom(api).patch_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name,
                                                {"spec": spec}, _request_timeout=REQUEST_TIMEOUT)


@dataclass(frozen=True)
class Platform:
    """Where to look for the usual causes of a sync that does not happen."""

    vault_address: str
    operator_namespace: str
    operator_deployment: str


def causes(api: k8s.ApiClient, adapter: Adapter | None, platform: Platform,
           namespaces: Iterable[str] = ()) -> list[str]:
    """What stands in the way of a sync, as far as the cluster and Vault say: a sealed or silent
    Vault, an operator without a ready replica, a store that cannot log in, and the operator's
    own reports and warnings about the sync objects in `namespaces`. Each line names its source."""
    out = []
    seal = vault.seal_status(platform.vault_address)
    if seal.error or seal.sealed or not seal.initialized:
        out.append(f"Vault is not serving: {seal}")
    if adapter is None:
        return out
    deployment = read_deployment(api, platform.operator_namespace, platform.operator_deployment)
    health = operator_health(deployment, platform.operator_namespace, platform.operator_deployment)
    if not health.running:
        out.append(f"the operator is not running: {health}")
    if isinstance(adapter, ExternalSecrets):
        store = read_object(api, adapter.store_kind, None, adapter.store)
        if store is None:
            out.append(f"ClusterSecretStore {adapter.store} does not exist (components.vault_secrets.store)")
        else:
            state = adapter.store_state(store)
            if state.ready is not True:
                out.append(f"the store cannot reach Vault: {state}")
    for ns in namespaces:
        kind = adapter.kind
        try:
            objects = _custom(api).list_namespaced_custom_object(kind.group, kind.version, ns, kind.plural,
                                                                 _request_timeout=REQUEST_TIMEOUT).get("items") or []
        except ApiException:
            continue
        for obj in objects:
            state = adapter.state(obj)
            if state.error:
                out.append(f"the operator reports: {state}")
            out += [f"operator event about {kind.kind} {ns}/{state.name}: {w}"
                    for w in warnings(api, ns, state.name, kind.kind)]
    return out


@dataclass(frozen=True)
class Consumed:
    """What a pod sees of a synced key, as digests: through its environment and through a file."""

    pod: str
    env: SecretDigest | None
    file: SecretDigest | None
    errors: str = ""


def consumer_pod(manifest: dict, secret: str, key: str, env: str, mount: str) -> dict:
    """`manifest` (a probe pod) given the Secret's `key` as the variable `env` and the Secret as
    files under `mount`."""
    spec = manifest["spec"]
    container = spec["containers"][0]
    container.setdefault("env", []).append(
        {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    container.setdefault("volumeMounts", []).append({"name": "synced", "mountPath": mount, "readOnly": True})
    spec.setdefault("volumes", []).append({"name": "synced", "secret": {"secretName": secret}})
    return manifest


def consumed(api: k8s.ApiClient, namespace: str, pod: str, env: str, path: str) -> Consumed:
    """Read the variable and the file (one line) inside the pod with the shell's builtins alone,
    and keep only their digests."""
    seen_env = exec_in(api, namespace, pod, ["/bin/sh", "-c", f'printf %s "${{{env}}}"'])
    seen_file = exec_in(api, namespace, pod, ["/bin/sh", "-c", 'IFS= read -r x < "$0"; printf %s "$x"', path])
    errors = "; ".join(f"{' '.join(r.argv)} exited {r.exit_code}: {redact_text(r.stderr.strip())}"
                       for r in (seen_env, seen_file) if r.exit_code != 0)
    return Consumed(pod, digest(seen_env.stdout) if seen_env.exit_code == 0 else None,
                    digest(seen_file.stdout) if seen_file.exit_code == 0 else None, errors)

"""Ceph's state as its manager's prometheus module publishes it, and what StorageClasses name.

Read-only everywhere: the metrics come from the manager's endpoint (a URL the runner reaches,
or the mgr Service through the API server's service proxy), so the same checks run on the local
cluster and in production. The parser reads the Prometheus text format the module writes; the
facts (health, checks, mons in quorum, OSDs up and in, pools, filesystems, gateways) are
derived from it into one frozen record.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import httpx
from kubernetes import client as k8s

HEALTH = {0: "HEALTH_OK", 1: "HEALTH_WARN", 2: "HEALTH_ERR"}
TIMEOUT_S = 15
_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    """Samples of the Prometheus text format; comments and malformed lines are left out."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        labels = {lm["key"]: lm["value"].replace('\\"', '"') for lm in _LABEL.finditer(m["labels"] or "")}
        out.append(Sample(m["name"], labels, value))
    return out


@dataclass(frozen=True)
class CephState:
    """What the manager says of the cluster, with where it was read and how long that took."""

    source: str
    health: str | None
    checks: tuple[str, ...]  # the health checks raised, as "NAME (severity)"
    mons: dict[str, bool]  # monitor -> in quorum
    osds_up: dict[str, bool]
    osds_in: dict[str, bool]
    pools: tuple[str, ...]
    filesystems: tuple[str, ...]
    gateways: tuple[str, ...]  # radosgw daemons
    elapsed_ms: float
    error: str | None = None
    raw_excerpt: str = field(default="", repr=False)

    def __str__(self) -> str:
        if self.error:
            return f"Ceph metrics from {self.source}: not read ({self.error})"
        return (f"Ceph metrics from {self.source}: {self.health}; checks {list(self.checks) or 'none'}; "
                f"mons {self.mons}; osds up {self.osds_up}, in {self.osds_in}; pools {list(self.pools)}; "
                f"filesystems {list(self.filesystems)}; gateways {list(self.gateways)}")


def state(samples: list[Sample], source: str, elapsed_ms: float = 0.0) -> CephState:
    """The cluster's facts from the prometheus module's samples."""
    by = lambda name: [s for s in samples if s.name == name]  # noqa: E731
    status = next((int(s.value) for s in by("ceph_health_status")), None)
    checks = tuple(sorted(f"{s.labels.get('name')} ({s.labels.get('severity', '?')})"
                          for s in by("ceph_health_detail") if s.value))
    daemon = lambda s: s.labels.get("ceph_daemon", "?")  # noqa: E731
    return CephState(
        source, HEALTH.get(status, f"unknown ({status})") if status is not None else None, checks,
        {daemon(s): s.value == 1 for s in by("ceph_mon_quorum_status")},
        {daemon(s): s.value == 1 for s in by("ceph_osd_up")},
        {daemon(s): s.value == 1 for s in by("ceph_osd_in")},
        tuple(sorted(s.labels["name"] for s in by("ceph_pool_metadata") if "name" in s.labels)),
        tuple(sorted(s.labels.get("name") or s.labels.get("fs_name", "") for s in by("ceph_fs_metadata"))),
        tuple(sorted(daemon(s) for s in by("ceph_rgw_metadata"))),
        elapsed_ms)


def read(api: k8s.ApiClient | None, url: str | None = None, service: str | None = None) -> CephState:
    """Read the metrics from `url`, or from `service` (<namespace>/<name>:<port>) through the API
    server's service proxy. A failure to read is evidence (error set), not an exception."""
    source = url or f"service {service} (API server proxy)"
    t0 = time.monotonic()
    try:
        if url:
            response = httpx.get(url, timeout=TIMEOUT_S)
            response.raise_for_status()
            text = response.text
        else:
            namespace, _, name_port = str(service).partition("/")
            text = k8s.CoreV1Api(api).connect_get_namespaced_service_proxy_with_path(
                name_port, namespace, "metrics", _request_timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the record carries the failure; the test asserts
        return CephState(source, None, (), {}, {}, {}, (), (), (), (time.monotonic() - t0) * 1000,
                         f"{type(exc).__name__}: {exc}")
    return state(parse(text), source, (time.monotonic() - t0) * 1000)


# --- what a StorageClass names -----------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """One thing a StorageClass's parameters name, and whether it exists."""

    storage_class: str
    parameter: str
    kind: str  # pool, filesystem, object store, namespace
    name: str
    exists: bool

    def __str__(self) -> str:
        return (f"StorageClass {self.storage_class}: {self.parameter}={self.name!r} names a {self.kind} "
                f"that {'exists' if self.exists else 'does not exist'}")


POOL_KEYS = ("pool", "dataPool")
FILESYSTEM_KEYS = ("fsName",)
OBJECT_STORE_KEYS = ("objectStoreName",)


def reference_kind(key: str) -> str | None:
    """What a StorageClass parameter key names, by the conventions Ceph CSI and Rook use."""
    if key in POOL_KEYS:
        return "pool"
    if key in FILESYSTEM_KEYS:
        return "filesystem"
    if key in OBJECT_STORE_KEYS:
        return "object store"
    if key.endswith("-namespace") or key.endswith("Namespace") or key == "clusterID":
        return "namespace"  # Rook's clusterID is the namespace of the CephCluster
    return None


def references(name: str, parameters: dict[str, str], pools: set[str], filesystems: set[str],
               object_stores: set[tuple[str, str]] | None, namespaces: set[str]) -> list[Reference]:
    """Each pool, filesystem, object store and namespace the parameters name, checked against
    what exists. `object_stores` holds (namespace, name) pairs, or None to check object stores
    by gateway presence alone (no Rook objects to read)."""
    out = []
    for key, value in sorted(parameters.items()):
        kind = reference_kind(key)
        if kind == "pool":
            exists = value in pools
        elif kind == "filesystem":
            exists = value in filesystems
        elif kind == "namespace":
            exists = value in namespaces
        elif kind == "object store":
            store_ns = parameters.get("objectStoreNamespace", "")
            exists = bool(object_stores) if object_stores is None else (store_ns, value) in object_stores
            if object_stores is not None and not exists and any(n == value for _, n in object_stores):
                kind = f"object store in namespace {store_ns!r}"
        else:
            continue
        out.append(Reference(name, key, kind, value, exists))
    return out


# --- Rook's objects (read only; their status is written by Rook alone) -------------------------

READY_PHASES = {"CephCluster": ("Ready",), "CephBlockPool": ("Ready",), "CephFilesystem": ("Ready",),
                "CephObjectStore": ("Ready", "Connected")}


@dataclass(frozen=True)
class RookObject:
    kind: str
    namespace: str
    name: str
    phase: str | None
    health: str | None
    message: str | None

    @property
    def ready(self) -> bool:
        if self.kind == "CephCluster":
            return self.phase in READY_PHASES[self.kind] and self.health in ("HEALTH_OK", None)
        return self.phase in READY_PHASES.get(self.kind, ("Ready",))

    def __str__(self) -> str:
        return (f"{self.kind} {self.namespace}/{self.name}: phase {self.phase}"
                + (f", ceph health {self.health}" if self.health else "") + (f" ({self.message})" if self.message else ""))


def rook_object(obj: dict) -> RookObject:
    """A Rook object's readiness from the status Rook writes (documented shapes: CephCluster
    `status.phase` + `status.ceph.health`; pools, filesystems, object stores `status.phase`)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ceph = status.get("ceph") or {}
    message = status.get("message") or ceph.get("details") and "; ".join(
        f"{k}: {v.get('message', v) if isinstance(v, dict) else v}" for k, v in sorted(ceph["details"].items())) or None
    return RookObject(obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?"),
                      status.get("phase"), ceph.get("health"), message)

"""Profiles: what a platform claims, the budgets it promises, and what a run may do there.

A profile is YAML checked against the dataclasses below when it is loaded, so that a typo ends
the run before anything touches a cluster, with one message naming the file, the key path and
the fix. The dataclasses are the schema: a field's type says what the YAML must hold, its
default says whether it may be left out, and its `help` is quoted in the fix.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from conformance import InputError
from conformance.components import COMPONENTS

SHIPPED = Path(__file__).with_name("profiles")
MODES = ("read-only", "full")
Mode = Literal["read-only", "full"]
PROMISE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9.-]*)+$")


# Schema classes take keywords only, so a required field may follow one with a default.
_schema = dataclass(frozen=True, kw_only=True)


class ProfileError(InputError):
    """A profile that cannot be used; the message names the file, the key path and the fix."""

    def __init__(self, source: str, path: str, problem: str, fix: str):
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{path}: " if path else ""
        super().__init__(f"profile {source}: {where}{problem}. Fix: {fix}")


def _f(help: str, default: Any = dataclasses.MISSING, check=None, optional: bool = False):
    """A schema field. `check(value)` returns a problem or None; `optional` exempts a
    component's field from being required when the component is claimed."""
    return field(default=default, metadata={"help": help, "check": check, "optional": optional})


def _ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    return None


def _url(value: str) -> str | None:
    return None if re.match(r"^https?://[^/\s]+", value) else f"{value!r} is not an http(s) URL"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"{value} is not above zero"


def _promise_id(value: str) -> str | None:
    return None if PROMISE_ID.match(value) else f"{value!r} is not a promise id"


def _resource(value: str) -> str | None:
    """An allowlist entry names what the API path names: `resource` or `resource.group`."""
    if value == "namespaces":
        return "the run's own namespaces are always allowed and no others may be listed"
    return None if re.match(r"^[a-z0-9]+(\.[a-z0-9.-]+)?$", value) else (
        f"{value!r} is not a resource name like `clusterissuers.cert-manager.io`")


def _vault_prefix(value: str) -> str | None:
    """A KV path prefix names a folder below a mount: a whole mount would reach the platform's
    own secrets, and without the closing `/` a sibling folder would match too."""
    if re.match(r"^[a-z0-9][a-z0-9_.-]*(/[A-Za-z0-9_.-]+)+/$", value):
        return None
    return f"{value!r} is not a folder below a KV mount ending in '/'"


def _address_range(value: str) -> str | None:
    """A MetalLB range as `first-last` of one family, or a CIDR."""
    first, sep, last = value.partition("-")
    try:
        if not sep:
            ipaddress.ip_network(value)
            return None
        a, b = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
    except ValueError:
        return f"{value!r} is not a first-last address range or a CIDR"
    if a.version != b.version or a > b:
        return f"{value!r} does not run from a lower to a higher address of one family"
    return None


def _host(value: str) -> str | None:
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    return None if re.match(rf"^({label}\.)+{label}$", value) else f"{value!r} is not a lowercase host name"


def _namespaced_name(value: str) -> str | None:
    return None if re.match(r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9.-]*$", value) else (
        f"{value!r} is not namespace/name")


def _name_prefix(value: str) -> str | None:
    """Bucket, user and record-label prefixes: short enough that the run id and a purpose fit in
    63 characters, and ending in '-' so the run id is a separate word."""
    if re.match(r"^[a-z][a-z0-9-]{0,14}-$", value):
        return None
    return (f"{value!r} is not 2 to 16 lowercase letters, digits or '-', a letter first and '-' last")


def _zone(value: str) -> str | None:
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    return None if re.match(rf"^({label}\.)+{label}$", value) else (
        f"{value!r} is not a lowercase DNS zone name without a trailing dot")


# --- cluster facts ---------------------------------------------------------------------------

@_schema
class Identity:
    """How the suite connects as one of its two identities; every field may be left out and
    the command line (`--kubeconfig`, `--context`, `--as`) and $KUBECONFIG come first."""

    kubeconfig: str | None = _f("path of the identity's kubeconfig", None)
    context: str | None = _f("kubeconfig context to use", None)
    user: str | None = _f("user name to impersonate (needs impersonation rights)", None)


@_schema
class Identities:
    read_only: Identity = _f("the read-only identity (get, list, watch)", Identity())
    full: Identity = _f("the full identity (writes as the write guard allows)", Identity())


@_schema
class Cluster:
    """Facts about the cluster as a whole."""

    api_endpoint: str | None = _f("the API server URL the profile promises, e.g. https://10.0.0.1:6443; "
                                  "leave out to take it from the kubeconfig", None, _url)
    nodes: tuple[str, ...] = _f("names of the nodes the platform promises, e.g. [node-a, node-b]")
    dual_stack: bool = _f("true when pods and Services get IPv4 and IPv6 addresses")
    domain: str = _f("the cluster DNS domain", "cluster.local")
    kube_proxy: Literal["expected", "replaced"] = _f(
        "`expected` when kube-proxy runs, `replaced` when the CNI replaces it")
    pod_cidrs: tuple[str, ...] = _f("pod address ranges", ())
    service_cidrs: tuple[str, ...] = _f("Service address ranges", ())


# --- components: a section per claimed component ---------------------------------------------
# A component's fields are required when it is claimed (unless marked optional) and may be left
# out when it is not, so a profile can keep names ready for a component it does not claim yet.

@_schema
class ComponentClaim:
    claimed: bool = _f("true when the platform promises this component; false skips its tests")


@_schema
class ControlPlane(ComponentClaim):
    pass


@_schema
class Runtime(ComponentClaim):
    name: str | None = _f("the container runtime every node reports, e.g. containerd or cri-o", None)
    min_version: str | None = _f("lowest acceptable runtime version, quoted, e.g. '2.0'", None)


@_schema
class Networking(ComponentClaim):
    nodeports_reachable: bool = _f("true when NodePorts answer from outside the cluster", False)
    world_target: str | None = _f("a host:port pods may reach outside the cluster", None, optional=True)


@_schema
class Dns(ComponentClaim):
    namespace: str | None = _f("namespace of the DNS Service and Deployment, e.g. kube-system", None)
    service: str | None = _f("name of the DNS Service, e.g. kube-dns", None)
    ip: str | None = _f("ClusterIP of the DNS Service, e.g. 10.96.0.10", None, _ip)
    deployment: str | None = _f("name of the DNS Deployment, e.g. coredns", None)
    replicas: int | None = _f("number of DNS replicas the platform runs", None)
    external_name: str | None = _f("a name outside the cluster the forwarder must resolve", None,
                                   optional=True)
    pod_records: Literal["insecure", "verified", "disabled"] = _f(
        "how the DNS answers pod A records `<dashed-ip>.<namespace>.pod.<domain>`, as CoreDNS's `pods` "
        "option says: insecure (any dashed address, kubeadm's default), verified (only addresses of pods "
        "in that namespace), disabled (none)", "insecure")


@_schema
class Cilium(ComponentClaim):
    namespace: str | None = _f("namespace of the Cilium agent and operator", None)


@_schema
class HostRedirect:
    """A redirect the platform promises for every host of one domain, checked with one sample
    host of it (e.g. www.example.org answers with a redirect to https://www.example.com/)."""

    from_host: str = _f("the host asked for, e.g. www.ocf.io", check=_host)
    to_host: str = _f("the host the redirect's Location names, e.g. www.ocf.berkeley.edu", check=_host)


@_schema
class Ingress(ComponentClaim):
    ingress_class: str | None = _f("the IngressClass tests use, e.g. contour", None)
    namespace: str | None = _f("namespace of the ingress controller", None)
    service: str | None = _f("the controller's LoadBalancer Service", None, optional=True)
    controller: Literal["contour"] | None = _f(
        "the implementation behind the class (its redirect annotation and default answer): contour", None)
    host_redirects: tuple[HostRedirect, ...] = _f(
        "host redirects the platform answers, e.g. [{from_host: www.ocf.io, to_host: www.ocf.berkeley.edu}]", ())


@_schema
class PoolAddresses:
    pool: str = _f("an IPAddressPool the profile names in pools, e.g. pool-1")
    addresses: tuple[str, ...] = _f("its address ranges exactly as the pool lists them, e.g. "
                                    "[169.229.226.81-169.229.226.89]", check=_address_range)


@_schema
class PinnedAddress:
    address: str = _f("a LoadBalancer address, e.g. 169.229.226.81", check=_ip)
    service: str = _f("the Service that must hold it, as namespace/name, e.g. contour/contour-envoy",
                      check=_namespaced_name)


@_schema
class MetalLB(ComponentClaim):
    namespace: str | None = _f("namespace of MetalLB and its pools", None)
    pools: tuple[str, ...] | None = _f("IPAddressPool names, e.g. [pool-1]", None)
    pool_addresses: tuple[PoolAddresses, ...] = _f(
        "the address ranges of each pool, e.g. [{pool: pool-1, addresses: [169.229.226.81-169.229.226.89]}]", ())
    pinned: tuple[PinnedAddress, ...] = _f(
        "addresses held by a named Service, e.g. [{address: 169.229.226.81, service: contour/contour-envoy}]", ())
    test_addresses: tuple[str, ...] = _f(
        "first-last ranges, at most one per family, for the pools a full run creates and removes (autoAssign "
        "off, disjoint from every pool); left empty, the promises that need a pool of their own skip; the "
        "allowlist must name ipaddresspools.metallb.io and l2advertisements.metallb.io in the namespace",
        (), _address_range)


@_schema
class CertManager(ComponentClaim):
    namespace: str | None = _f("namespace of cert-manager", None)
    cluster_issuers: tuple[str, ...] | None = _f("ClusterIssuers the platform offers", None)
    production_issuers: tuple[str, ...] = _f(
        "ClusterIssuers backed by a rate-limited production ACME service", ())
    test_issuer: str | None = _f(
        "the ClusterIssuer full runs order test certificates from (DNS-01); one of production_issuers "
        "only with policy.allow_new_production_certificates; unset: no certificate is ordered", None,
        optional=True)
    http01_issuer: str | None = _f("a ClusterIssuer that solves HTTP-01 through the ingress class, for "
                                   "full runs; unset: the HTTP-01 promise is skipped", None, optional=True)
    ca_roots_url: str | None = _f(
        "where the issuers' root certificates are published (PEM), e.g. pebble's https://host:15000/roots/0; "
        "unset: the runner's system trust store", None, _url, optional=True)
    short_duration_issuer: str | None = _f(
        "a ClusterIssuer that honours a Certificate's duration (ACME enableDurationFeature, or a CA issuer), "
        "for the renewal promise; unset: renewal is not checked", None, optional=True)
    rfc2136_server: str | None = _f("the zone's authoritative server for RFC2136 updates, host:port", None,
                                    optional=True)
    tsig_key_name: str | None = _f("the TSIG key name the zone accepts updates with", None, optional=True)
    tsig_algorithm: Literal["HMACSHA256", "HMACSHA512", "HMACSHA1"] = _f(
        "the TSIG algorithm, as cert-manager spells it", "HMACSHA256")
    tsig_secret_file: str | None = _f(
        "a file holding the TSIG secret (base64); $PCF_TSIG_SECRET wins", None, optional=True)


@_schema
class Storage(ComponentClaim):
    provisioner: Literal["rook-ceph", "local-path"] = _f(
        "the implementation behind the StorageClasses: rook-ceph (Ceph CSI, Rook's objects) or "
        "local-path (rancher's local-path-provisioner)", "rook-ceph")
    namespace: str | None = _f("namespace of the provisioner (Rook operator and Ceph cluster, or "
                               "local-path-provisioner)", None)
    ceph_cluster: str | None = _f("name of the CephCluster (rook-ceph only)", None, optional=True)
    storage_classes: tuple[str, ...] | None = _f("StorageClasses the platform offers", None)
    default_storage_class: str | None = _f("the default StorageClass", None, optional=True)
    rwx_classes: tuple[str, ...] = _f(
        "StorageClasses that serve ReadWriteMany (several pods writing at once), e.g. [cephfs-nvme]", ())
    expandable_classes: tuple[str, ...] = _f(
        "StorageClasses whose volumes grow when their claim asks for more, e.g. [rbd-nvme]", ())
    snapshot_classes: tuple[str, ...] = _f("VolumeSnapshotClasses the platform offers", ())
    test_size_mi: int = _f("size of each test volume, in MiB", 64, _positive)
    throughput_mb: int = _f("MiB written and read back for the throughput report", 64, _positive)


@_schema
class ObjectStorage(ComponentClaim):
    namespace: str | None = _f("namespace of the CephObjectStore", None, optional=True)
    object_store: str | None = _f("name of the CephObjectStore", None, optional=True)
    bucket_storage_class: str | None = _f("StorageClass for ObjectBucketClaims (obc provisioning)", None,
                                          optional=True)
    s3_endpoint: str | None = _f("the public S3 endpoint, e.g. https://s3.example.org", None, _url)
    region: str = _f("the region S3 requests are signed for (radosgw: its zonegroup's name)", "us-east-1")
    provisioning: Literal["admin-api", "obc"] = _f(
        "how the run gets buckets: admin-api (users and buckets made through radosgw's admin API with "
        "admin_credentials) or obc (ObjectBucketClaims of bucket_storage_class)", "admin-api")
    admin_endpoint: str | None = _f("radosgw's admin API, when not at s3_endpoint", None, _url, optional=True)
    admin_credentials: str | None = _f(
        "a JSON file {access_key, secret_key} of an S3 user with the users and buckets caps "
        "(admin-api provisioning); $PCF_S3_ADMIN_ACCESS_KEY and $PCF_S3_ADMIN_SECRET_KEY come first",
        None, optional=True)
    multipart_max_mb: int = _f("size of the multipart upload test object, in MiB (the cap)", 16, _positive)
    objects_listed: int = _f("objects written to prove listing pagination", 25, _positive)


@_schema
class Ceph(ComponentClaim):
    metrics_url: str | None = _f(
        "the Ceph manager's Prometheus endpoint as the runner reaches it, e.g. "
        "http://192.168.77.2:9283/metrics; or leave out and give metrics_service", None, _url, optional=True)
    metrics_service: str | None = _f(
        "the manager's metrics Service as <namespace>/<name>:<port>, read through the API server's "
        "service proxy, e.g. rook/rook-ceph-mgr:9283", None, optional=True)
    mons: int = _f("monitors the cluster runs, all expected in quorum", 1, _positive)
    osds: int = _f("OSDs expected up and in", 1, _positive)
    pools: tuple[str, ...] = _f("pools StorageClasses may name, beyond those the metrics list", ())
    rook: bool = _f("true when Rook runs Ceph: its CephCluster, pools, filesystems and object stores "
                    "are checked", False)
    namespace: str | None = _f("namespace of Rook's objects, when rook is true", None, optional=True)


def _duration(value: str) -> str | None:
    """A Go duration as operators take it, e.g. 30s, 5m, 1h; `0` means never."""
    return None if re.match(r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$", value) else (
        f"{value!r} is not a duration like 30s, 5m or 1h (0 for never)")


@_schema
class Vault(ComponentClaim):
    server: Literal["vault", "openbao"] = _f(
        "which server answers at the address: vault (HashiCorp's) or openbao (its open fork); both "
        "speak the same HTTP API for KV v2 and Kubernetes auth", "vault")
    namespace: str | None = _f("namespace of the Vault server; `host` when it runs outside the "
                               "cluster (the local cluster's OpenBao)", None)
    address: str | None = _f("Vault address from inside the cluster", None, _url)
    external_address: str | None = _f("Vault address from outside", None, _url, optional=True)
    kv_mount: str | None = _f("the KV v2 mount, e.g. kvv2", None)
    replicas: tuple[str, ...] = _f(
        "the address of each server replica whose seal status read-only checks ask, e.g. "
        "[http://vault-0.vault-internal.vault.svc:8200]; empty means the external address (or the "
        "address) alone", ())
    ha: bool = _f("true when the servers run in HA mode and one of them must be the active leader", False)
    raft_peers: int | None = _f("number of Raft voters the HA cluster must have, where claimed; "
                                "checked through the suite's token", None, optional=True)
    auth_path: str = _f("the Kubernetes auth mount the suite logs in with", "auth/kubernetes")
    suite_role: str | None = _f(
        "the Kubernetes auth role of the suite, whose policy allows only "
        "write_allowlist.outside.vault.prefix, e.g. platform-conformance", None, optional=True)
    suite_service_account: str | None = _f(
        "`namespace/name` of the ServiceAccount the suite logs in as (the runner may request its "
        "tokens), e.g. pcf-system/platform-conformance-vault", None, optional=True)


@_schema
class VaultSecrets(ComponentClaim):
    operator: Literal["ricoberger", "external-secrets"] = _f(
        "the operator that syncs Vault into Secrets: ricoberger (vault-secrets-operator, kind "
        "VaultSecret) or external-secrets (External Secrets Operator, kind ExternalSecret)",
        "ricoberger")
    namespace: str | None = _f("namespace of the operator", None)
    deployment: str | None = _f("name of the operator's Deployment, e.g. vault-secrets-operator", None)
    auth_path: str | None = _f("Vault auth mount the operator logs in with, e.g. auth/kubernetes", None)
    auth_role: str | None = _f("Vault role of the operator", None)
    store: str | None = _f("external-secrets only: the ClusterSecretStore sync objects name, e.g. vault",
                           None, optional=True)
    refresh_interval: str | None = _f(
        "external-secrets only: the refreshInterval the platform's ExternalSecrets use, e.g. 15s "
        "(0 means never re-read)", None, _duration, optional=True)
    rotation: Literal["claimed", "not-claimed"] = _f(
        "`claimed` when an update in Vault must reach its Secret on the operator's own schedule; "
        "`not-claimed` skips the rotation promise", "claimed")


@_schema
class SyncPolicy:
    """An Application's sync policy, as `spec.syncPolicy.automated` declares it."""

    automated: bool = _f("true when Applications sync on their own (spec.syncPolicy.automated is set)")
    prune: bool = _f("true when an automated sync deletes objects removed from git (automated.prune)", False)
    self_heal: bool = _f("true when an automated sync reverts changes made by hand (automated.selfHeal)", False)


@_schema
class ArgoCD(ComponentClaim):
    namespace: str | None = _f("namespace of Argo CD and its Applications", None)
    project: str | None = _f("AppProject test Applications use", None)
    sync_policy: SyncPolicy | None = _f(
        "the sync policy every Application declares, e.g. {automated: true, prune: false, self_heal: false}", None)
    manual_apps: tuple[str, ...] = _f("Applications that must sync by hand instead, e.g. [bootstrap]", ())
    app_of_apps: str | None = _f("the Application that declares every other one, e.g. bootstrap", None,
                                 optional=True)


@_schema
class Components:
    control_plane: ControlPlane | None = _f("the API server, controllers and nodes", None)
    runtime: Runtime | None = _f("the container runtime", None)
    networking: Networking | None = _f("pod networking, Services and NetworkPolicy", None)
    dns: Dns | None = _f("cluster DNS", None)
    cilium: Cilium | None = _f("Cilium", None)
    ingress: Ingress | None = _f("the ingress controller", None)
    metallb: MetalLB | None = _f("MetalLB", None)
    cert_manager: CertManager | None = _f("cert-manager", None)
    storage: Storage | None = _f("Rook-Ceph block and file storage", None)
    object_storage: ObjectStorage | None = _f("Ceph object storage (S3)", None)
    ceph: Ceph | None = _f("Ceph's own health, read from its manager's metrics", None)
    vault: Vault | None = _f("Vault", None)
    vault_secrets: VaultSecrets | None = _f("vault-secrets-operator", None)
    argocd: ArgoCD | None = _f("Argo CD", None)


# --- budgets, policy, waivers, images, writes, outside-in probes -----------------------------

@_schema
class Budgets:
    """Service levels the platform promises; missing one fails the promise that measures it."""

    dns_p95_ms: float = _f("95th percentile of DNS lookup latency, in milliseconds", check=_positive)
    lb_address_s: float = _f("seconds until a LoadBalancer Service gets an address", check=_positive)
    pvc_bound_s: float = _f("seconds until a PersistentVolumeClaim is Bound", check=_positive)
    certificate_issued_s: float = _f("seconds until a Certificate is Ready", check=_positive)
    secret_synced_s: float = _f("seconds until a VaultSecret's Secret exists", check=_positive)
    secret_rotated_s: float = _f("seconds until an update in Vault reaches its synced Secret",
                                 120.0, check=_positive)
    application_synced_s: float = _f("seconds until an Application is Synced and Healthy",
                                     check=_positive)
    min_certificate_days: float = _f("days a served certificate must still be valid", check=_positive)


@_schema
class Policy:
    """What a run may do on this platform."""

    default_mode: Mode = _f("mode when --mode is not given: read-only or full")
    allow_disruptive: bool = _f("true to run tests marked disruptive")
    allow_pool_exhaustion: bool = _f("true to let tests take every address of an address pool")
    allow_new_production_certificates: bool = _f(
        "true to let tests request certificates from the production_issuers")
    allow_upstream_e2e: bool = _f(
        "true to let `nox -s upstream-e2e` run Kubernetes' own e2e specs here: they make namespaces, "
        "RBAC and workloads of their own, beyond what a full run's write allowlist names", False)


@_schema
class Waiver:
    """A known failure the operators accept until a date; it stops counting after that day."""

    promise: str = _f("the promise id, e.g. dns/resolve/service-fqdn", check=_promise_id)
    reason: str = _f("why the failure is accepted, e.g. a ticket")
    expires: dt.date = _f("last day the waiver counts, e.g. 2026-06-30")

    def active(self, today: dt.date) -> bool:
        return today <= self.expires


@_schema
class Images:
    """For clusters that pull from a mirror: the prefix goes before each upstream reference."""

    registry_prefix: str | None = _f("mirror prefix, e.g. registry.example.org/mirror", None)
    pull_secret: str | None = _f("name of an image pull Secret to attach to test pods", None)

    def image(self, upstream: str) -> str:
        """The reference to pull: the upstream one, or the same behind the mirror prefix
        (`registry.k8s.io/pause:3.10` -> `<prefix>/registry.k8s.io/pause:3.10`)."""
        if not self.registry_prefix:
            return upstream
        return f"{self.registry_prefix.rstrip('/')}/{upstream}"


@_schema
class NamespacedWrite:
    resource: str = _f("resource or resource.group, e.g. applications.argoproj.io", check=_resource)
    namespace: str = _f("the component namespace the object must live in, e.g. argocd")


@_schema
class PathWrites:
    prefix: str = _f("the KV path every name starts with, e.g. kvv2/platform-conformance/",
                     check=_vault_prefix)


@_schema
class NameWrites:
    prefix: str = _f("the prefix of every name, e.g. pcf-", check=_name_prefix)


@_schema
class ZoneWrites:
    zone: str = _f("the DNS zone every name lives in, e.g. test.example.org", check=_zone)
    prefix: str = _f("the prefix of the name's label directly below the zone, e.g. pcf-",
                     check=_name_prefix)


@_schema
class OutsideWrites:
    """Systems outside the Kubernetes API a full run may write to, each under one prefix; a
    system left out gets no write at all. Names are <prefix><run id>-<expiry>-<purpose>."""

    vault: PathWrites | None = _f("Vault KV paths, e.g. {prefix: kvv2/platform-conformance/}", None)
    s3: NameWrites | None = _f("S3 buckets and users, e.g. {prefix: pcf-}", None)
    dns: ZoneWrites | None = _f("DNS records, e.g. {zone: test.example.org, prefix: pcf-}", None)
    acme: ZoneWrites | None = _f("names ACME orders are placed for, e.g. {zone: test.example.org, "
                                 "prefix: pcf-}", None)


@_schema
class WriteAllowlist:
    """Writes a full run may make outside its own namespaces and the control namespace.

    Entries name resources the way the API path and RBAC do (`resource.group`), because that
    is what the write guard sees before a request leaves.
    """

    cluster_scoped: tuple[str, ...] = _f(
        "cluster-scoped resources a run may create, e.g. [clusterissuers.cert-manager.io]", (),
        _resource)
    namespaced: tuple[NamespacedWrite, ...] = _f(
        "(resource, namespace) pairs, e.g. [{resource: applications.argoproj.io, namespace: argocd}]", ())
    outside: OutsideWrites = _f("writes outside the Kubernetes API, per system", OutsideWrites())

    def allows_namespaced(self, resource: str, namespace: str) -> bool:
        return any(w.resource == resource and w.namespace == namespace for w in self.namespaced)


@_schema
class Outside:
    """Where outside-in probes (LoadBalancer, ingress, S3) start."""

    origin: Literal["netns", "runner"] = _f(
        "`netns` to probe from a network namespace on the LAN, `runner` to probe from this machine")
    netns: str | None = _f("the network namespace, when origin is netns", None)


@_schema
class Profile:
    name: str = _f("short name of the platform")
    description: str = _f("one line on what this profile describes")
    cluster: Cluster = _f("facts about the cluster")
    components: Components = _f("the components the platform claims")
    budgets: Budgets = _f("service budgets")
    policy: Policy = _f("what a run may do")
    outside: Outside = _f("where outside-in probes start")
    identities: Identities = _f("how to connect as each identity", Identities())
    waivers: tuple[Waiver, ...] = _f("accepted failures, each with an expiry date", ())
    images: Images = _f("image mirror settings", Images())
    write_allowlist: WriteAllowlist = _f("writes allowed outside the run's namespaces", WriteAllowlist())
    source: str = field(default="", compare=False, metadata={"internal": True})

    def component(self, name: str) -> ComponentClaim | None:
        return getattr(self.components, name)

    def claims(self, name: str) -> bool:
        section = self.component(name)
        return bool(section and section.claimed)

    @property
    def claimed(self) -> tuple[str, ...]:
        return tuple(name for name in COMPONENTS if self.claims(name))

    def waiver(self, promise: str, today: dt.date) -> Waiver | None:
        """The waiver that covers `promise` today; an expired one does not count."""
        return next((w for w in self.waivers if w.promise == promise and w.active(today)), None)

    def budget(self, name: str) -> float:
        return getattr(self.budgets, name)


# --- loading ---------------------------------------------------------------------------------

def shipped() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in SHIPPED.glob("*.yaml")))


def resolve(spec: str) -> Path:
    """`--profile NAME|PATH`: a path when it looks like one, else a shipped profile's name."""
    path = Path(spec).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in spec or path.exists():
        if not path.is_file():
            raise ProfileError(spec, "", "no such file",
                               f"give an existing YAML file or one of: {', '.join(shipped())}")
        return path
    named = SHIPPED / f"{spec}.yaml"
    if not named.is_file():
        raise ProfileError(spec, "", "no shipped profile has this name",
                           f"use one of {', '.join(shipped())}, or a path to a YAML file")
    return named


def load(spec: str | Path = "local", overrides: typing.Sequence[str] = ()) -> Profile:
    """Read, override (`key.path=value`, each value read as YAML) and validate a profile."""
    path = resolve(str(spec))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(str(path), "", f"not valid YAML {where}: {getattr(exc, 'problem', exc)}",
                           "correct the YAML syntax at that place") from None
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot be read: {exc.strerror}",
                           "check the path and its permissions") from None
    return parse(raw, str(path), overrides)


def parse(raw: Any, source: str, overrides: typing.Sequence[str] = ()) -> Profile:
    ctx = _Context(source)
    raw = dict(raw) if isinstance(raw, dict) else raw
    for expr in overrides:
        raw = ctx.override(raw, expr)
    profile = ctx.build(Profile, raw, "")
    ctx.check_claims(profile.components)
    ctx.check_outside(profile.outside)
    ctx.check_outside_writes(profile)
    ctx.check_operator(profile.components.vault_secrets)
    return dataclasses.replace(profile, source=source)


class _Context:
    """One validation pass: remembers the source and which key paths came from `--set`."""

    def __init__(self, source: str):
        self.source = source
        self.overridden: dict[str, str] = {}  # key path -> the --set expression
        self.texts: dict[str, str] = {}  # key path -> the --set value as typed

    def error(self, path: str, problem: str, fix: str) -> ProfileError:
        expr = next((e for p, e in self.overridden.items()
                     if path == p or path.startswith((p + ".", p + "["))), None)
        source = f"{self.source} (with --set {expr})" if expr else self.source
        return ProfileError(source, path, problem, fix)

    def override(self, raw: Any, expr: str) -> dict:
        key, sep, text = expr.partition("=")
        keys = key.strip().split(".")
        if not sep or not all(keys):
            raise ProfileError(self.source, key, f"--set {expr!r} is not key.path=value",
                               "write it as --set budgets.dns_p95_ms=80")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        raw = dict(raw) if isinstance(raw, dict) else {}
        node = raw
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ProfileError(self.source, ".".join(keys[: i + 1]),
                                   f"--set {expr!r} goes below a value that is not a mapping",
                                   "set that key itself, not a key under it")
            node[k] = child = dict(child)
            node = child
        node[keys[-1]] = value
        self.overridden[".".join(keys)] = expr
        self.texts[".".join(keys)] = text.strip()
        return raw

    def build(self, cls: type, raw: Any, where: str) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        if not isinstance(raw, dict):
            raise self.error(where, f"expected a mapping, got {_show(raw)}",
                             f"give a mapping with the keys {', '.join(fields)}")
        hints = typing.get_type_hints(cls)
        for key in raw:
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                fix = f"did you mean `{close[0]}`?" if close else (
                    f"remove it; the keys here are {', '.join(fields)}")
                raise self.error(_join(where, str(key)), "unknown key", fix)
        values = {}
        for name, f in fields.items():
            path = _join(where, name)
            if name in raw:
                values[name] = self.convert(hints[name], raw[name], path, f)
            elif f.default is dataclasses.MISSING:
                raise self.error(path, "missing", f"add `{path}`: {f.metadata['help']}")
        return cls(**values)

    def convert(self, tp: Any, value: Any, path: str, f: dataclasses.Field) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if value is None:
                return None
            return self.convert(inner[0], value, path, f)
        if value is None:
            raise self.error(path, "has no value", f"set it to {_describe(tp)}: {f.metadata['help']}")
        if origin is tuple:
            if not isinstance(value, list):
                raise self.error(path, f"expected a list, got {_show(value)}",
                                 f"write a YAML list: {f.metadata['help']}")
            return tuple(self.convert(args[0], v, f"{path}[{i}]", f) for i, v in enumerate(value))
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        converted = self.scalar(tp, origin, args, value, path, f)
        check = f.metadata.get("check")
        problem = check(converted) if check else None
        if problem:
            raise self.error(path, problem, f"set it to {f.metadata['help']}")
        return converted

    def scalar(self, tp, origin, args, value, path, f) -> Any:
        wrong = self.error(path, f"expected {_describe(tp)}, got {_show(value)}",
                           f"set it to {_describe(tp)}: {f.metadata['help']}"
                           + ("; quote versions such as '1.10'" if tp is str else ""))
        if origin is Literal:
            if value not in args:
                raise wrong
            return value
        if tp is bool:
            if not isinstance(value, bool):
                raise wrong
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise wrong
            return float(value)
        if tp is str:
            if path in self.texts and isinstance(value, (int, float)):
                return self.texts[path]  # `--set ...min_version=2.10` means the text, not 2.1
            if not isinstance(value, str):
                raise wrong
            return value
        if tp is dt.date:
            if isinstance(value, dt.date):
                return value
            try:
                return dt.date.fromisoformat(str(value))
            except ValueError:
                raise wrong from None
        raise TypeError(f"profile schema: no conversion for {tp!r} at {path}")

    def check_claims(self, components: Components) -> None:
        for section in dataclasses.fields(components):
            claim = getattr(components, section.name)
            if not (claim and claim.claimed):
                continue
            for f in dataclasses.fields(claim):
                if getattr(claim, f.name) is None and not f.metadata.get("optional"):
                    path = f"components.{section.name}.{f.name}"
                    raise self.error(path, f"missing while {section.name} is claimed",
                                     f"add `{path}`: {f.metadata['help']}; or set "
                                     f"components.{section.name}.claimed to false")

    def check_outside(self, outside: Outside) -> None:
        if outside.origin == "netns" and not outside.netns:
            raise self.error("outside.netns", "missing while outside.origin is netns",
                             "name the network namespace, e.g. pcf-outside, or set origin: runner")


    def check_operator(self, section: VaultSecrets | None) -> None:
        if section and section.claimed and section.operator == "external-secrets":
            for key, example in (("store", "vault"), ("refresh_interval", "15s")):
                if getattr(section, key) is None:
                    path = f"components.vault_secrets.{key}"
                    raise self.error(path, "missing while the operator is external-secrets",
                                     f"add `{path}`, e.g. {example}")

    def check_outside_writes(self, profile: Profile) -> None:
        vault, writes = profile.components.vault, profile.write_allowlist.outside.vault
        if vault and vault.claimed and vault.kv_mount and writes and not writes.prefix.startswith(
                vault.kv_mount.strip("/") + "/"):
            raise self.error("write_allowlist.outside.vault.prefix",
                             f"{writes.prefix!r} is not below the KV mount {vault.kv_mount!r} "
                             "(components.vault.kv_mount)",
                             f"start it with {vault.kv_mount.strip('/')}/, e.g. "
                             f"{vault.kv_mount.strip('/')}/platform-conformance/")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({type(value).__name__})"


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        return "a list"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            dt.date: "a date (YYYY-MM-DD)"}.get(tp, getattr(tp, "__name__", str(tp)))

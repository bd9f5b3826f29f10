"""The upgrade gate's sentinels: data an upgrade must keep, written before it, checked byte for
byte after it.

One sentinel per claimed component that holds data: a ConfigMap (the API and its store), a
LoadBalancer address (MetalLB's assignment), a file on a PVC (storage), an S3 object
(object storage), a Vault value synced into a Secret (Vault and its operator), and an
Application at a known revision (Argo CD). Each is written through the gate's own identity:
in the gate's namespace, or under the profile's outside prefixes and write allowlist, every
name carrying the gate id and its expiry, so the sweeper leaves it alone until that expiry.

A sentinel's record holds where it is and digests of what it holds (SHA-256 of random bytes
the gate made; never a value that means anything). `check` names what was lost or changed;
`remove` removes what lives outside the gate's namespace (the namespace's deletion takes the
rest).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

import httpx
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import outside, outside_s3, pods, run as runs
from conformance.outside import OutsideGuard
from conformance.outside_vault import VaultKV
from conformance.probes import argocd, s3, secret_sync, vault, volumes
from conformance.probes.workloads import apply as apply_workload
from conformance.profile import Profile
from conformance.waiting import wait_for

T = TypeVar("T")
SENTINEL_BYTES = 4096
NAME = "pcf-sentinel"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Door:
    """What a sentinel writes and reads through: the gate's client (its guard allows the
    gate's namespace and the profile's allowlist), its namespace, the profile, the gate's
    identity and its outside-write guard. `reserve` records the names a sentinel is about to
    create outside the gate's namespace before it creates them, so an interrupted write still
    leaves `clean` what it needs to remove them."""

    api: k8s.ApiClient
    namespace: str
    profile: Profile
    gate: runs.RunIdentity
    outside: OutsideGuard
    reserve: Callable[[dict], None] = lambda names: None

    def outside_name(self, system: str, purpose: str) -> str:
        return outside.name(self.gate, self.outside.scope(system), purpose)

    def outside_write(self, system: str, name: str, call: Callable[[], T], verb: str = "write") -> T:
        self.outside.check(system, name, verb)
        return call()


class Sentinel(Protocol):
    kind: str

    def applies(self, profile: Profile) -> bool:
        """Its component is claimed (and the profile gives it what it needs)."""

    def write(self, door: Door) -> dict:
        """Write it; the record (JSON) says where it is and holds digests only."""

    def check(self, door: Door, record: dict) -> str | None:
        """What was lost or changed, or None when it is as written."""

    def remove(self, door: Door, record: dict) -> None:
        """Remove what lives outside the gate's namespace; already gone is fine."""


def _unreadable(where: str, exc: k8s.ApiException) -> str:
    if exc.status == 404:
        return f"{where} is gone (404 {exc.reason})"
    return f"{where} could not be read: {exc.status} {exc.reason}"


def _changed(where: str, now: str, record: dict) -> str | None:
    if now == record["digest"]:
        return None
    return f"{where} changed: its content digests to {now}, not {record['digest']} as written before"


class InNamespace:
    """A sentinel that lives only in the gate's namespace: the namespace's deletion removes it."""

    def remove(self, door: Door, record: dict) -> None:
        pass


class ConfigMapSentinel(InNamespace):
    """Random bytes in a ConfigMap: the API and its store keep data through the upgrade."""

    kind = "configmap"

    def applies(self, profile: Profile) -> bool:
        return True

    def write(self, door: Door) -> dict:
        payload = secrets.token_bytes(SENTINEL_BYTES)
        k8s.CoreV1Api(door.api).create_namespaced_config_map(door.namespace, {
            "metadata": {"name": NAME}, "binaryData": {"payload": base64.b64encode(payload).decode()}})
        return {"kind": self.kind, "where": f"ConfigMap {door.namespace}/{NAME}", "digest": sha256(payload)}

    def check(self, door: Door, record: dict) -> str | None:
        try:
            cm = k8s.CoreV1Api(door.api).read_namespaced_config_map(NAME, door.namespace)
        except k8s.ApiException as exc:
            return _unreadable(record["where"], exc)
        return _changed(record["where"], sha256(base64.b64decode((cm.binary_data or {}).get("payload", ""))), record)


class LoadBalancerSentinel(InNamespace):
    """A LoadBalancer Service's address: what the pool handed out before the upgrade is still
    held by the same Service after it (MetalLB's assignments survive a controller restart)."""

    kind = "loadbalancer"
    name = f"{NAME}-lb"

    def applies(self, profile: Profile) -> bool:
        return profile.claims("metallb")

    def _addresses(self, api: k8s.ApiClient, namespace: str) -> list[str]:
        svc = k8s.CoreV1Api(api).read_namespaced_service(self.name, namespace)
        return sorted(i.ip for i in (svc.status.load_balancer.ingress or []) if i.ip)

    def write(self, door: Door) -> dict:
        k8s.CoreV1Api(door.api).create_namespaced_service(door.namespace, {
            "metadata": {"name": self.name},
            "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack",
                     "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": self.name}}})
        addresses = wait_for(f"Service {door.namespace}/{self.name} to get a LoadBalancer address",
                             lambda: self._addresses(door.api, door.namespace), until=bool, timeout="lb_address")
        return {"kind": self.kind, "where": f"Service {door.namespace}/{self.name}", "addresses": addresses}

    def check(self, door: Door, record: dict) -> str | None:
        try:
            now = self._addresses(door.api, door.namespace)
        except k8s.ApiException as exc:
            return _unreadable(record["where"], exc)
        if now != record["addresses"]:
            return f"{record['where']} held {', '.join(record['addresses'])} before and holds {', '.join(now) or 'nothing'} now"
        return None


class VolumeSentinel(InNamespace):
    """A file of random bytes on a PVC of the profile's first StorageClass, read back by a pod
    after the upgrade (the writer pod if it still runs, else a new one on the same claim)."""

    kind = "volume"
    claim, writer, reader = f"{NAME}-volume", f"{NAME}-writer", f"{NAME}-reader"
    path = "/data/sentinel"

    def applies(self, profile: Profile) -> bool:
        return profile.claims("storage") and bool(profile.components.storage.storage_classes)

    def write(self, door: Door) -> dict:
        storage = door.profile.components.storage
        storage_class = storage.storage_classes[0]
        volumes.create_claim(door.api, door.namespace, self.claim, storage_class, f"{storage.test_size_mi}Mi",
                             images=door.profile.images)
        volumes.create_pod(door.api, door.namespace, self.writer, self.claim, door.profile.images)
        pods.wait_pod(door.api, door.namespace, self.writer)
        wrote = volumes.write_random(door.api, door.namespace, self.writer, self.path, SENTINEL_BYTES // 1024)
        if wrote.sha256 is None:
            raise RuntimeError(f"the sentinel file could not be written: {wrote}")
        return {"kind": self.kind, "where": f"{self.path} on PVC {door.namespace}/{self.claim} ({storage_class})",
                "digest": f"sha256:{wrote.sha256}"}

    def _pod(self, door: Door) -> str:
        """A running pod with the claim mounted: the writer, else a reader made now."""
        for name in (self.writer, self.reader):
            try:
                if pods.view(door.api, door.namespace, name).ready:
                    return name
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
        volumes.create_pod(door.api, door.namespace, self.reader, self.claim, door.profile.images)
        pods.wait_pod(door.api, door.namespace, self.reader)
        return self.reader

    def check(self, door: Door, record: dict) -> str | None:
        try:
            found = volumes.digest(door.api, door.namespace, self._pod(door), self.path)
        except (k8s.ApiException, TimeoutError) as exc:
            return f"{record['where']} could not be read: {type(exc).__name__}: {exc}"
        if found.sha256 is None:
            return f"{record['where']} could not be read: {found}"
        return _changed(record["where"], f"sha256:{found.sha256}", record)


class ObjectSentinel:
    """An S3 object of random bytes in a bucket of the gate's own: made through radosgw's admin
    API with a user of the gate's own, or asked of the platform with an ObjectBucketClaim in the
    gate's namespace, as the profile provisions the run's buckets."""

    kind = "s3-object"
    key = "sentinel"
    claim = f"{NAME}-bucket"

    def applies(self, profile: Profile) -> bool:
        return profile.claims("object_storage")

    def _admin(self, door: Door) -> outside_s3.RgwAdmin:
        section = door.profile.components.object_storage
        keys = outside_s3.admin_keys(section.admin_credentials, door.profile.source or door.profile.name)
        return outside_s3.RgwAdmin(section.admin_endpoint or section.s3_endpoint, keys, section.region)

    def _client(self, door: Door, keys: outside_s3.Keys):
        section = door.profile.components.object_storage
        return s3.client(section.s3_endpoint, keys.access_key, keys.secret_key, section.region)

    def _by_claim(self, door: Door) -> bool:
        return door.profile.components.object_storage.provisioning == "obc"

    def write(self, door: Door) -> dict:
        payload, bucket = secrets.token_bytes(SENTINEL_BYTES), door.outside_name("s3", "sentinel")
        door.reserve({"bucket": bucket})
        if self._by_claim(door):
            section = door.profile.components.object_storage
            client = self._client(door, outside_s3.claim_bucket(door.api, door.namespace, self.claim, bucket,
                                                                section.bucket_storage_class, door.outside_write))
        else:
            admin = self._admin(door)

            def create():
                made = self._client(door, admin.create_user(bucket))
                made.create_bucket(Bucket=bucket)
                return made
            client = door.outside_write("s3", bucket, create, "create")
        door.outside_write("s3", bucket, lambda: client.put_object(Bucket=bucket, Key=self.key, Body=payload))
        return {"kind": self.kind, "where": f"S3 object {bucket}/{self.key}", "bucket": bucket,
                "digest": sha256(payload)}

    def check(self, door: Door, record: dict) -> str | None:
        try:
            if self._by_claim(door):
                keys = outside_s3.claimed_keys(door.api, door.namespace, self.claim, record["bucket"])
            else:
                keys = self._admin(door).user_keys(record["bucket"])
            if keys is None:
                return f"{record['where']} is gone: its owner {record['bucket']} no longer exists"
            body = self._client(door, keys).get_object(Bucket=record["bucket"], Key=self.key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore's, httpx's and the API's errors alike: unreadable
            return f"{record['where']} could not be read: {type(exc).__name__}: {exc}"
        return _changed(record["where"], sha256(body), record)

    def remove(self, door: Door, record: dict) -> None:
        if self._by_claim(door):
            return  # the claim goes with the gate's namespace, and the platform removes its bucket
        admin = self._admin(door)
        door.outside_write("s3", record["bucket"], lambda: admin.delete(record["bucket"]), "delete")


class SecretSyncSentinel:
    """A random value written to a Vault path of the gate's own and synced into a Secret by the
    profile's operator: after the upgrade the Secret still holds it (and Vault still has it)."""

    kind = "vault-secret"
    name = f"{NAME}-secret"
    field = "sentinel"

    def applies(self, profile: Profile) -> bool:
        return profile.claims("vault") and profile.claims("vault_secrets")

    def _kv(self, door: Door) -> VaultKV:
        section = door.profile.components.vault
        jwt = vault.service_account_token(door.api, section.suite_service_account)
        login = vault.login(vault.address_of(door.profile), section.auth_path, section.suite_role, jwt)
        if login.error:
            raise RuntimeError(f"the gate cannot log in to Vault: {login}")
        return VaultKV(login.address, login.token, section.kv_mount)

    def _digest(self, door: Door) -> str | None:
        secret = k8s.CoreV1Api(door.api).read_namespaced_secret(self.name, door.namespace)
        value = (secret.data or {}).get(self.field)
        return None if value is None else sha256(base64.b64decode(value))

    def write(self, door: Door) -> dict:
        kv, value = self._kv(door), secrets.token_hex(32)
        path = door.outside_name("vault", "sentinel")
        door.reserve({"path": path})
        door.outside_write("vault", path, lambda: kv.put(path, {self.field: value}), "create")
        adapter = secret_sync.adapter(door.profile)
        secret_sync.create(door.api, adapter, adapter.manifest(self.name, door.namespace, path))
        record = {"kind": self.kind, "where": f"Secret {door.namespace}/{self.name} (synced from Vault {path})",
                  "path": path, "digest": sha256(value.encode())}

        def synced() -> str | None:
            try:
                return self._digest(door)
            except k8s.ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        wait_for(f"{adapter.kind.kind} {door.namespace}/{self.name} to sync Vault {path} into its Secret",
                 synced, until=lambda d: d == record["digest"], timeout="secret_synced")
        return record

    def check(self, door: Door, record: dict) -> str | None:
        try:
            now = self._digest(door)
        except k8s.ApiException as exc:
            return _unreadable(record["where"], exc)
        if now is None:
            return f"{record['where']} lost its key {self.field!r}"
        return _changed(record["where"], now, record)

    def remove(self, door: Door, record: dict) -> None:
        kv = self._kv(door)
        door.outside_write("vault", record["path"], lambda: kv.delete(record["path"]), "delete")


class ApplicationSentinel:
    """An Argo CD Application of the gate's own, synced from a repository served in the gate's
    namespace: after the upgrade it is still Synced and Healthy at the same revision, and the
    ConfigMap it manages still holds the same bytes."""

    kind = "application"
    git, repo, managed = f"{NAME}-git", "sentinel", f"{NAME}-app"

    def applies(self, profile: Profile) -> bool:
        return profile.claims("argocd")

    def write(self, door: Door) -> dict:
        section, payload = door.profile.components.argocd, secrets.token_hex(SENTINEL_BYTES // 2)
        apply_workload(door.api, door.namespace, "gitserver", door.profile.images, NAME=self.git)
        pods.wait_pod(door.api, door.namespace, self.git)
        pushed = argocd.commit(door.api, door.namespace, self.git, self.repo,
                               {"app/sentinel.yaml": argocd.config_map(self.managed, {"payload": payload})},
                               "the gate's sentinel")
        if not pushed.ok:
            raise RuntimeError(f"the sentinel's repository could not be written: {pushed}")
        name = door.gate.name("sentinel")
        door.reserve({"name": name, "namespace": section.namespace})
        url = argocd.repo_url(self.git, door.namespace, door.profile.cluster.domain, self.repo)
        argocd.create(door.api, argocd.manifest(name, section.namespace, repo=url, path="app",
                                                destination_namespace=door.namespace, project=section.project,
                                                automated=True))
        wait_for(f"Application {section.namespace}/{name} to be Synced and Healthy at {pushed.revision[:12]}",
                 lambda: argocd.application(door.api, section.namespace, name),
                 until=lambda a: a is not None and a.synced_and_healthy and a.revision == pushed.revision,
                 timeout="application_synced", retry_on=pods.TRANSIENT)
        return {"kind": self.kind, "where": f"Application {section.namespace}/{name}", "name": name,
                "namespace": section.namespace, "revision": pushed.revision, "digest": sha256(payload.encode())}

    def check(self, door: Door, record: dict) -> str | None:
        try:
            app = argocd.application(door.api, record["namespace"], record["name"])
            cm = k8s.CoreV1Api(door.api).read_namespaced_config_map(self.managed, door.namespace)
        except k8s.ApiException as exc:
            return _unreadable(f"{record['where']} or its ConfigMap {door.namespace}/{self.managed}", exc)
        if app is None:
            return f"{record['where']} is gone"
        if not app.synced_and_healthy or app.revision != record["revision"]:
            return (f"{record['where']} was Synced and Healthy at {record['revision'][:12]} and is now "
                    f"{app.sync}/{app.health} at {(app.revision or '-')[:12]}")
        return _changed(f"ConfigMap {door.namespace}/{self.managed} (managed by {record['where']})",
                        sha256((cm.data or {}).get("payload", "").encode()), record)

    def remove(self, door: Door, record: dict) -> None:
        runs.delete_and_wait(DynamicClient(door.api), argocd.API_VERSION, "Application", record["name"],
                             record["namespace"], timeout="application_deleted")


SENTINELS: dict[str, Sentinel] = {s.kind: s for s in (
    ConfigMapSentinel(), LoadBalancerSentinel(), VolumeSentinel(), ObjectSentinel(), SecretSyncSentinel(),
    ApplicationSentinel())}

# What a sentinel's write or check may meet, besides a refused write (WriteRefused).
TROUBLE = (k8s.ApiException, httpx.HTTPError, outside_s3.AdminError, TimeoutError, RuntimeError, OSError)

"""S3 buckets and their users as an outside system: radosgw's admin API, driven by the cleanup
stack and the sweeper.

A run's bucket and the user that owns it carry the same guarded name
(`<prefix><run id>-<expiry>-<purpose>`), so one delete removes both: the bucket with every
object, then the user with whatever else it owns. Requests are signed with AWS Signature V4 by
botocore, with the admin credentials the profile names (a user with the `users` and `buckets`
caps). The adapter makes requests only; the write guard is asked by
`conformance.outside.OutsideWrites` and by the sweeper before any write reaches it.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import InputError
from conformance.outside import scopes
from conformance.profile import Profile
from conformance.waiting import wait_for

# connect, read; in seconds. Purging a bucket of a test's few objects takes well under this.
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
ACCESS_KEY_ENV, SECRET_KEY_ENV = "PCF_S3_ADMIN_ACCESS_KEY", "PCF_S3_ADMIN_SECRET_KEY"


class AdminError(RuntimeError):
    """A request radosgw answered with an error; the message keeps radosgw's own words."""

    def __init__(self, method: str, url: str, response: httpx.Response):
        self.status = response.status_code
        super().__init__(f"{method} {url} answered {response.status_code}: {response.text[:500]}")


@dataclass(frozen=True)
class Keys:
    """One S3 user's keys."""

    user: str
    access_key: str
    secret_key: str = ""

    def __repr__(self) -> str:  # never print a secret
        return f"Keys(user={self.user!r}, access_key={self.access_key!r}, secret_key=<redacted>)"


def admin_keys(credentials: str | None, source: str = "the profile") -> Keys:
    """The admin keys: $PCF_S3_ADMIN_ACCESS_KEY/SECRET_KEY first, else the profile's JSON file."""
    if os.environ.get(ACCESS_KEY_ENV) and os.environ.get(SECRET_KEY_ENV):
        return Keys("(from the environment)", os.environ[ACCESS_KEY_ENV], os.environ[SECRET_KEY_ENV])
    fix = (f"set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or point components.object_storage."
           "admin_credentials at a JSON file {\"access_key\": ..., \"secret_key\": ...}")
    if not credentials:
        raise InputError(f"no S3 admin credentials: {source} names no components.object_storage."
                         f"admin_credentials. Fix: {fix}")
    try:
        data = json.loads(Path(credentials).read_text())
        return Keys(data.get("user", "admin"), data["access_key"], data["secret_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"S3 admin credentials {credentials} ({source}) cannot be read: "
                         f"{type(exc).__name__}: {exc}. Fix: {fix}") from None


def _first_key(uid: str, info: dict) -> Keys:
    key = info["keys"][0]
    return Keys(uid, key["access_key"], key["secret_key"])


class RgwAdmin:
    """radosgw's admin API (`/admin/...`) at one endpoint, signed with one admin's keys."""

    system = "s3"
    kind = "bucket and user"

    def __init__(self, endpoint: str, keys: Keys, region: str, client: httpx.Client | None = None):
        self.endpoint, self.keys, self.region = endpoint.rstrip("/"), keys, region
        self.client = client or httpx.Client(timeout=TIMEOUT)

    def _call(self, method: str, path: str, **params: str) -> object | None:
        """One signed request; None when radosgw has nothing there (404)."""
        url = f"{self.endpoint}/admin/{path}" + (f"?{urlencode(params)}" if params else "")
        request = AWSRequest(method=method, url=url, data=b"")
        S3SigV4Auth(Credentials(self.keys.access_key, self.keys.secret_key), "s3", self.region).add_auth(request)
        response = self.client.request(method, url, headers=dict(request.headers.items()))
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AdminError(method, url, response)
        return response.json() if response.content else {}

    def create_user(self, uid: str) -> Keys:
        """A new S3 user with one key pair."""
        info = self._call("PUT", "user", uid=uid, **{"display-name": uid}) or {}
        return _first_key(uid, info)

    def user_keys(self, uid: str) -> Keys | None:
        """The user's first key pair, or None when there is no such user."""
        info = self._call("GET", "user", uid=uid)
        return None if info is None else _first_key(uid, info)

    def users(self) -> list[str]:
        return list(self._call("GET", "metadata/user") or [])

    def buckets(self) -> list[str]:
        return list(self._call("GET", "bucket") or [])

    def bucket_owner(self, bucket: str) -> str | None:
        info = self._call("GET", "bucket", bucket=bucket)
        return None if info is None else info.get("owner")

    def user_exists(self, uid: str) -> bool:
        return self._call("GET", "user", uid=uid) is not None

    def delete_bucket(self, bucket: str) -> None:
        """Remove the bucket with every object in it; one already gone is not an error."""
        self._call("DELETE", "bucket", bucket=bucket, **{"purge-objects": "true"})

    def delete_user(self, uid: str) -> None:
        """Remove the user with every bucket and object it owns; one already gone is not an error."""
        self._call("DELETE", "user", uid=uid, **{"purge-data": "true"})

    # --- what the cleanup stack and the sweeper need (conformance.outside.OutsideSystem) ---

    def list_names(self, prefix: str) -> list[str]:
        """Buckets and users whose names start with `prefix`, each once."""
        return sorted({n for n in self.buckets() + self.users() if n.startswith(prefix)})

    def delete(self, name: str) -> None:
        """Remove the bucket `name` and the user `name`, and return once both are gone."""
        self.delete_bucket(name)
        self.delete_user(name)


OBC_API = "objectbucket.io/v1alpha1"


def claimed_keys(api: k8s.ApiClient, namespace: str, claim: str, bucket: str) -> Keys:
    """The keys the provisioner wrote into an ObjectBucketClaim's Secret (named as the claim)."""
    data = k8s.CoreV1Api(api).read_namespaced_secret(claim, namespace).data or {}
    return Keys(bucket, base64.b64decode(data["AWS_ACCESS_KEY_ID"]).decode(),
                base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode())


def claim_bucket(api: k8s.ApiClient, namespace: str, claim: str, bucket: str, storage_class: str,
                 write: Callable[[str, str, Callable[[], object], str], object]) -> Keys:
    """Ask the platform for `bucket` with an ObjectBucketClaim `claim` of `storage_class`, through
    `write` (the guard's door: system, name, call, verb), and return its keys once Bound. The
    claim goes with its namespace, and the provisioner removes the bucket with it."""
    claims = DynamicClient(api).resources.get(api_version=OBC_API, kind="ObjectBucketClaim")
    write("s3", bucket, lambda: claims.create(namespace=namespace, body={
        "apiVersion": OBC_API, "kind": "ObjectBucketClaim", "metadata": {"name": claim},
        "spec": {"bucketName": bucket, "storageClassName": storage_class}}), "create")
    wait_for(f"ObjectBucketClaim {namespace}/{claim} ({storage_class}) to be Bound",
             lambda: claims.get(name=claim, namespace=namespace).to_dict(),
             until=lambda o: (o.get("status") or {}).get("phase") == "Bound", timeout="pvc_bound")
    return claimed_keys(api, namespace, claim, bucket)


def from_profile(profile: Profile) -> RgwAdmin | None:
    """The sweeper's adapter: None when the profile provisions no buckets through the admin API,
    allows no S3 prefix, or gives no admin credentials."""
    s3, scope = profile.components.object_storage, scopes(profile).get("s3")
    if not (s3 and s3.provisioning == "admin-api" and scope and s3.s3_endpoint):
        return None
    try:
        keys = admin_keys(s3.admin_credentials, profile.source or profile.name)
    except InputError:
        return None
    return RgwAdmin(s3.admin_endpoint or s3.s3_endpoint, keys, s3.region)

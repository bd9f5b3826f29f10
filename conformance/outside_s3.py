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

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conformance import InputError
from conformance.outside import scopes
from conformance.profile import Profile

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
        key = info["keys"][0]
        return Keys(uid, key["access_key"], key["secret_key"])

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

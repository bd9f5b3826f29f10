"""radosgw (Ceph's S3 gateway) as a host-side service on the node's LAN address.

Ready once it answers S3 on ceph.RGW_ENDPOINT and its admin user exists (made on the first
ready check, keys in ceph.ADMIN_CREDENTIALS, the file the local profile names). The first
bucket takes a few seconds more: radosgw creates its pools then. Leaves behind only its pools
in the cluster and its files under paths.STATE/ceph.
"""
from __future__ import annotations

from conformance.cluster import ceph

NAME = "radosgw"
PACKAGES = ceph.PACKAGES
PORTS = {ceph.RGW_PORT: "radosgw (S3)"}
READY_S = 120


def spec() -> dict:
    return ceph.supervised(NAME, "rgw")


def ready() -> bool:
    if not ceph.http_ok(ceph.RGW_ENDPOINT + "/"):
        return False
    try:
        ceph.ensure_admin()
    except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
        return False
    return True

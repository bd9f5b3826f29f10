"""Ceph's monitor as a host-side service (conformance/cluster/ceph.py has the shared setup).

Ready once it answers `ceph mon stat` with itself in quorum. Leaves behind only its store under
paths.STATE/ceph.
"""
from __future__ import annotations

from conformance.cluster import ceph

NAME = "ceph-mon"
PACKAGES = ceph.PACKAGES
PORTS = dict(ceph.MON_PORTS)
READY_S = 60


def spec() -> dict:
    return ceph.supervised(NAME, "mon")


def ready() -> bool:
    try:
        return f"{ceph.MON_ID}" in ceph.quorum()
    except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
        return False

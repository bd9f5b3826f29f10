"""Ceph's monitor as a host-side service (conformance/cluster/ceph.py has the shared setup).

Ready once it answers `ceph mon stat` with itself in quorum. Leaves behind only its store under
paths.STATE/ceph.
"""
from __future__ import annotations

import sys

from conformance.cluster import ceph, paths

NAME = "ceph-mon"
PACKAGES = ceph.PACKAGES
PORTS = dict(ceph.MON_PORTS)
READY_S = 60


def spec() -> dict:
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"),
            "argv": [sys.executable, "-m", "conformance.cluster.ceph", "mon"]}


def ready() -> bool:
    try:
        return f"{ceph.MON_ID}" in ceph.quorum()
    except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
        return False

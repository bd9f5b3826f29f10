"""Ceph's one OSD as a host-side service: bluestore on a sparse file under paths.STATE/ceph.

Ready once the cluster counts it up and in. Leaves behind only its data folder (with the sparse
block file) under paths.STATE/ceph.
"""
from __future__ import annotations

import json

from conformance.cluster import ceph

NAME = "ceph-osd"
PACKAGES = ceph.PACKAGES
PORTS: dict[int, str] = {}  # it binds a free port of Ceph's range and tells the monitor
READY_S = 120


def spec() -> dict:
    return ceph.supervised(NAME, "osd")


def ready() -> bool:
    try:
        stat = json.loads(ceph.cli("osd", "stat", "--format=json", timeout=15))
    except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
        return False
    stat = stat.get("osdmap", stat)
    return stat.get("num_up_osds", 0) >= 1 and stat.get("num_in_osds", 0) >= 1

"""Ceph's manager as a host-side service; its prometheus module serves the cluster's health.

Ready once the prometheus module answers on the LAN address (ceph.METRICS_URL), which is what
the read-only Ceph promises read. Leaves behind only its data folder under paths.STATE/ceph.
"""
from __future__ import annotations

from conformance.cluster import ceph

NAME = "ceph-mgr"
PACKAGES = ceph.PACKAGES
PORTS = {ceph.METRICS_PORT: "ceph-mgr prometheus module"}
READY_S = 90


def spec() -> dict:
    return ceph.supervised(NAME, "mgr")


def ready() -> bool:
    return ceph.http_ok(ceph.METRICS_URL)

"""Waiting for the shared local cluster's full-run lease, for the project's own integration tests."""
from __future__ import annotations

from kubernetes import client as k8s

from conformance import run as runs
from conformance.waiting import wait_for


def wait_for_free_lease(admin_api) -> None:
    """Wait until no other full run holds the lease (another may still take it right after)."""
    coordination = k8s.CoordinationV1Api(admin_api)

    def live_holder() -> str | None:
        try:
            lease = coordination.read_namespaced_lease(runs.LEASE_NAME, "pcf-system")
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return runs.LeaseView.of(admin_api.sanitize_for_serialization(lease)).live_holder(runs.now())

    wait_for("other full runs to release the lease", live_holder, until=lambda holder: holder is None,
             timeout=600, interval=2)

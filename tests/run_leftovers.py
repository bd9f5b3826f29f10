"""What a run left on the local cluster, seen with the admin identity, not with the run's own."""
from __future__ import annotations

import uuid

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import profile as profiles, run as runs, sweep
from conformance.waiting import wait_for


def new_id() -> str:
    """A run id the tests choose, so they can look for its objects afterwards."""
    return "t" + uuid.uuid4().hex[:7]


def _lease(admin_api: k8s.ApiClient) -> k8s.V1Lease | None:
    try:
        return k8s.CoordinationV1Api(admin_api).read_namespaced_lease(runs.LEASE_NAME, "pcf-system")
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def lease_holder(admin_api: k8s.ApiClient) -> str | None:
    """The holder the lease names, live or stale."""
    lease = _lease(admin_api)
    return lease.spec.holder_identity if lease else None


def wait_for_free_lease(admin_api: k8s.ApiClient) -> None:
    """Until no other full run holds the lease (the local cluster is shared)."""
    def live_holder() -> str | None:
        lease = _lease(admin_api)
        return lease and runs.LeaseView.of(admin_api.sanitize_for_serialization(lease)).live_holder(runs.now())

    wait_for("other full runs to release the lease", live_holder, until=lambda holder: holder is None,
             timeout=600, interval=0.5)


def left_by(admin_api: k8s.ApiClient, run_id: str) -> list[str]:
    """Every object carrying the run's label wherever the local profile lets a run write."""
    found = sweep.collect(DynamicClient(admin_api), sweep.kinds(profiles.load("local")),
                          selector=f"{runs.RUN_LABEL}={run_id}")
    return [str(sweep.Found.of(o)) for o in found]

"""Breaking storage on purpose fails the promises that cover it, naming the cause.

Each test breaks one thing (radosgw stopped, the OSD stopped, the volume provisioner scaled to
zero, a StorageClass naming a pool and a namespace that do not exist), runs the covering suite
as a user would, and reads its JSON summary: the covering promises failed by their own checks
(outcome `failed`, from the test's body), and each failure's message or diagnosis names the
cause. What was broken is restored in `finally`, and the test waits until it serves again. The
full-run lease is held from before the break until after the restore (test_core_breakage.held).
Skipped, naming the tier, when the storage tier is not installed (tests/tiers.py).
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance import run as runs, waiting
from conformance.cluster import ceph, ceph_osd, ceph_rgw
from conformance.probes import ceph as ceph_probe
from tests.integration.core_runs import run_suites
from tests.integration.test_core_breakage import _cluster, _renewing
from tiers import needs
from tinysuite import derived_profile

pytestmark = pytest.mark.serial
RECOVER_S = 180
PROVISIONER = ("local-path-storage", "local-path-provisioner")


needs_storage = needs("ceph", "radosgw", "local-path-provisioner")


@pytest.fixture
def held(admin_api):
    """The full-run lease from before the break until after the restore (as in
    test_core_breakage), taken again when another run's lease appears or goes between our read
    and write (the cluster is shared)."""
    lease = runs.RunLease(admin_api, runs.RunIdentity(runs.new_run_id(), "full"))
    waiting.wait_for("the full-run lease (another full run holds it)", lease.acquire, until=lambda _: True,
                     timeout=900.0, interval=1.0, retry_on=(runs.LeaseHeld, k8s.ApiException))
    try:
        with _renewing(lease):
            yield lease
    finally:
        try:
            lease.release()
        except k8s.ApiException:
            pass  # already gone or taken over: nothing of ours to release


def _hold(service: str, held_: bool) -> None:
    """Stop (held) or let its tier's supervisor restart (released) one host service."""
    _cluster("hold" if held_ else "release", service)


def _wait(what: str, probe, until=bool, limit_s: float = RECOVER_S):
    return waiting.wait_for(what, probe, until=until, timeout=float(limit_s), interval=1.0)


def _judge(held_, tests, tmp_path, keyword, profile="local"):
    """Run the covering suite under the test's run id; then take the lease back for the restore
    if no other run took it first (the restore follows at once either way)."""
    try:
        return run_suites(tests, tmp_path, keyword=keyword, profile=profile,
                          extra=("--timeout-scale=0.25", f"--run-id={held_.run.run_id}"))
    finally:
        try:
            held_.acquire()
        except runs.LeaseHeld:
            pass


def _names(run, promise: str, cause: str) -> None:
    """Every result of the promise failed by its own check, its message or diagnosis naming `cause`."""
    results = run.promises.get(promise, [])
    assert results, f"{promise} did not run:\n{run.output[-4000:]}"
    wrong = {r["nodeid"]: (r["outcome"], r["reason"]) for r in results
             if r["outcome"] != "failed" or cause not in (r["reason"] or "") + (r["diagnosis"] or "")}
    assert wrong == {}, f"{promise} should fail naming {cause!r}:\n{run.output[-6000:]}"


@needs_storage
def test_stopped_radosgw_fails_object_storage_promises_naming_the_gateway(held, tmp_path):
    try:
        _hold(ceph_rgw.NAME, True)
        _wait("radosgw to stop answering", lambda: not ceph.http_ok(ceph.RGW_ENDPOINT + "/"))
        run = _judge(held, ["suites/test_object_storage.py"], tmp_path, keyword="checksum or presigned or multipart")
    finally:
        _hold(ceph_rgw.NAME, False)
        _wait("radosgw to serve again", ceph_rgw.ready)
    assert run.exit_code == 1, run.output
    for promise in ("object-storage/object/roundtrip", "object-storage/access/presigned-get-from-outside",
                    "object-storage/object/multipart"):
        _names(run, promise, f"S3 admin API at {ceph.RGW_ENDPOINT}")
        _names(run, promise, "radosgw")


@needs_storage
def test_stopped_osd_fails_ceph_health_and_osd_promises_naming_the_osd(held, tmp_path):
    try:
        _hold(ceph_osd.NAME, True)
        _wait("the OSD to be reported down", lambda: not ceph_osd.ready())
        # The manager's prometheus module serves what it gathered last; wait until it says so too.
        _wait("the manager's metrics to show osd.0 down",
              lambda: ceph_probe.read(None, ceph.METRICS_URL).osds_up.get("osd.0") is False)
        run = _judge(held, ["suites/test_ceph.py"], tmp_path, keyword="health or osds")
    finally:
        _hold(ceph_osd.NAME, False)
        _wait("the OSD to be up and in again", ceph_osd.ready)
        _wait("Ceph to report HEALTH_OK again", lambda: "HEALTH_OK" in ceph.cli("health"))
    assert run.exit_code == 1, run.output
    _names(run, "ceph/osds/up-and-in", "down: ['osd.0']")
    _names(run, "ceph/health/ok", "OSD_DOWN")


@needs_storage
def test_stopped_provisioner_fails_binding_naming_the_provisioner(admin_api, held, tmp_path):
    apps = k8s.AppsV1Api(admin_api)
    namespace, name = PROVISIONER
    before = apps.read_namespaced_deployment(name, namespace).spec.replicas
    profile = derived_profile(tmp_path / "fast-bind.yaml", budgets={"pvc_bound_s": 15})
    try:
        apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 0}})
        _wait("no provisioner pod left", lambda: k8s.CoreV1Api(admin_api).list_namespaced_pod(
            namespace, label_selector="app=local-path-provisioner").items, until=lambda pods: not pods)
        run = _judge(held, ["suites/test_volumes.py"], tmp_path / "reports", keyword="binds_within_budget",
                     profile=profile)
    finally:
        apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": before}})
        _wait("the provisioner ready again", lambda: apps.read_namespaced_deployment(
            name, namespace).status.ready_replicas or 0, until=lambda n: n >= before)
    assert run.exit_code == 1, run.output
    _names(run, "storage/claim/binds-within-budget", "its provisioner rancher.io/local-path did not bind")


@needs_storage
def test_class_naming_missing_pool_and_namespace_fails_the_reference_check(admin_api, tmp_path):
    storage = k8s.StorageV1Api(admin_api)
    name = "pcf-broken-references"
    storage.create_storage_class({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"pool": "no-such-pool", "csi.storage.k8s.io/node-stage-secret-namespace": "no-such-namespace"}})
    profile = derived_profile(tmp_path / "broken-class.yaml",
                              components={"storage": {"storage_classes": ["local-path", name]}})
    try:
        run = run_suites(["suites/test_ceph.py"], tmp_path / "reports", mode="read-only", profile=profile,
                         keyword="name_what_exists")
    finally:
        storage.delete_storage_class(name)
    assert run.exit_code == 1, run.output
    _names(run, "ceph/classes/references-exist", f"StorageClass {name}: pool='no-such-pool' names a pool that does not exist")
    _names(run, "ceph/classes/references-exist", "names a namespace that does not exist")

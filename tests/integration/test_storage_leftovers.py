"""Nothing a storage run provisioned is left after it: buckets and users in radosgw, volumes and
snapshots on the cluster; a run that was killed leaves names the sweeper takes, and only those.

Against the real radosgw and local-path-provisioner of the storage tier."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import outside, profile as profiles, run as runs, sweep
from conformance.cluster import paths
from conformance.outside import OutsideGuard, OutsideWrites
from conformance.outside_s3 import from_profile
from conformance.probes import s3
from conformance.run import CleanupStack, RunIdentity, now
from run_leftovers import new_id, wait_for_free_lease
from tests.integration.core_runs import ROOT, run_suites
from tests.integration.test_storage_breakage import needs_storage

PROFILE = profiles.load("local")
LEASE_TRIES = 10


@pytest.fixture
def admin():
    adapter = from_profile(PROFILE)
    if adapter is None:
        pytest.fail("the local profile gives no S3 admin adapter: is the radosgw credentials file "
                    f"{PROFILE.components.object_storage.admin_credentials} there?")
    return adapter


def _run_pvs(admin_api, run_id: str) -> list[str]:
    """PersistentVolumes still bound to a claim in one of the run's namespaces."""
    return [pv.metadata.name for pv in k8s.CoreV1Api(admin_api).list_persistent_volume().items
            if pv.spec.claim_ref and pv.spec.claim_ref.namespace.startswith(f"pcf-{run_id}-")]


def _bucket(admin, name: str) -> None:
    keys = admin.create_user(name)
    client = s3.client(PROFILE.components.object_storage.s3_endpoint, keys.access_key, keys.secret_key,
                       PROFILE.components.object_storage.region)
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="left", Body=b"left behind")


@needs_storage
def test_a_runs_cleanup_removes_its_bucket_and_user(admin):
    stack = CleanupStack()
    run = RunIdentity(new_id(), "full")
    writes = OutsideWrites(run, OutsideGuard.for_profile("full", [run.run_id], PROFILE), stack)
    name = writes.name("s3", "cleanup")
    writes.create(admin, name, lambda: _bucket(admin, name))
    assert admin.list_names(name) == [name]
    assert stack.close() == []
    assert admin.list_names(name) == []


@needs_storage
def test_the_sweeper_removes_a_dead_runs_buckets_and_users_and_nothing_else(admin):
    prefix = outside.scopes(PROFILE)["s3"].prefix
    dead = f"{prefix}{new_id()}-{(now() - dt.timedelta(hours=1)).strftime('%Y%m%d%H%M')}-killed"
    live_id = new_id()
    live = f"{prefix}{live_id}-{(now() + dt.timedelta(hours=1)).strftime('%Y%m%d%H%M')}-running"
    unowned = "conformance-admin"  # the harness's own user: outside the prefix, never taken
    try:
        _bucket(admin, dead)
        _bucket(admin, live)
        lines: list[str] = []
        assert sweep.sweep_outside({"s3": admin}, PROFILE, live_id, now(), False, lines.append) == []
        assert admin.list_names(dead) == [], lines
        assert admin.list_names(live) == [live]
        assert admin.user_exists(unowned)
    finally:
        admin.delete(dead)
        admin.delete(live)


@needs_storage
def test_a_full_storage_run_leaves_no_bucket_user_volume_or_snapshot(admin_api, admin, tmp_path):
    run_id = new_id()
    prefix = outside.scopes(PROFILE)["s3"].prefix + run_id
    for _ in range(LEASE_TRIES):  # the cluster is shared: another run may take the lease first
        wait_for_free_lease(admin_api)
        run = run_suites(["suites/test_object_storage.py", "suites/test_volumes.py"], tmp_path,
                         keyword="checksum or data_written", extra=(f"--run-id={run_id}",))
        if "holds the lease" not in run.output:
            break
    assert run.exit_code == 0, run.output
    assert admin.list_names(prefix) == []
    assert _run_pvs(admin_api, run_id) == []


@needs_storage
def test_an_interrupted_run_leaves_only_what_the_sweeper_removes(admin_api, admin, tmp_path):
    """Interrupted while its tests hold a bucket and a bound volume; whatever the interrupted run
    did not remove itself, the sweeper does."""
    run_id = new_id()
    prefix = outside.scopes(PROFILE)["s3"].prefix + run_id
    wait_for_free_lease(admin_api)
    argv = [sys.executable, "-m", "pytest", "suites/test_object_storage.py", "suites/test_volumes.py",
            "--profile=local", f"--kubeconfig={paths.kubeconfig('runner')}", f"--reports={tmp_path}",
            f"--run-id={run_id}", "-q", "-p", "no:cacheprovider", "-k", "multipart or data_written"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not admin.list_names(prefix):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    left_s3 = admin.list_names(prefix)
    # The sweeper's own steps, narrowed to this run: the cluster is shared, and other runs'
    # leftovers are their owners' to sweep.
    dyn = DynamicClient(admin_api)
    doomed = sweep.select(sweep.collect(dyn, sweep.kinds(PROFILE), selector=f"{runs.RUN_LABEL}={run_id}"),
                          None, now())
    lines: list[str] = []
    failures = sweep.remove(dyn, doomed, lines.append)
    failures += sweep.sweep_outside({"s3": _OnlyRun(admin, prefix)}, PROFILE, None, now(), False, lines.append)
    assert failures == [], lines
    assert admin.list_names(prefix) == [], f"left after the interrupt: {left_s3}\n{lines}\n{out[-3000:]}"
    assert _run_pvs(admin_api, run_id) == [], lines


class _OnlyRun:
    """The S3 adapter, listing only one run's names."""

    def __init__(self, adapter, prefix: str):
        self.adapter, self.prefix = adapter, prefix
        self.system, self.kind = adapter.system, adapter.kind

    def list_names(self, prefix: str) -> list[str]:
        return [n for n in self.adapter.list_names(prefix) if n.startswith(self.prefix)]

    def delete(self, name: str) -> None:
        self.adapter.delete(name)

"""Run safety on the real local cluster: the lease, the guard against RBAC, cleanup on SIGINT,
the sweeper after SIGKILL, and a read-only run judged by the API server's audit log.

Each test runs real suite runs (tiny generated suites through every plugin) as subprocesses
under the suite's own identities, and judges them from the cluster and the audit log, never
from what the suite says about itself. They use the real lease, so they run one at a time.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conformance import kube, profile as profiles, run as runs
from conformance.cluster import paths
from conformance.guard import WriteGuard, WriteRefused
from conformance.waiting import wait_for
from tinysuite import ALL_PLUGINS, DNS_ONLY, derived_profile, project, run
from tiers import installed_profile

from cluster_audit import audit_lines, audit_since, not_read_only
from run_leftovers import lease_holder, left_by, new_id

READER = paths.kubeconfig("reader")
RUNNER = paths.kubeconfig("runner")
RUN_S = 300  # limit on one whole tiny run, including its cleanup

HOLDING = '''
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conformance.waiting import wait_for


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/it/holds-until-released")
def test_holds_until_released(namespace, kube, cleanup):
    """A run MUST keep what it created until it is released."""
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "held"}})
    cleanup.push("configmap held", lambda: core.delete_namespaced_config_map("held", namespace))
    Path("READY_FILE").write_text(namespace)
    wait_for("the release file", lambda: Path("RELEASE_FILE").exists(), timeout=RUN_S, interval=0.2)
'''.replace("RUN_S", str(RUN_S))


def holding(ready: Path, release: Path) -> str:
    return HOLDING.replace("READY_FILE", str(ready)).replace("RELEASE_FILE", str(release))


def holding_run(tmp_path: Path, run_id: str) -> tuple[subprocess.Popen, Path, Path]:
    """Start a full run whose one test creates a namespace and a ConfigMap, then waits."""
    ready, release = tmp_path / f"{run_id}.ready", tmp_path / f"{run_id}.release"
    root = project(tmp_path / run_id, {"suites/test_hold.py": holding(ready, release)},
                   plugins=ALL_PLUGINS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--profile={derived_profile(tmp_path / f'{run_id}.yaml', **DNS_ONLY)}",
         "--mode=full", f"--kubeconfig={RUNNER}",
         f"--run-id={run_id}"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"run {run_id} to create its objects", lambda: ready.exists() or proc.poll() is not None,
                 timeout=120, interval=0.2)
    except BaseException:
        proc.kill()
        raise
    assert ready.exists(), f"run {run_id} ended early:\n{proc.communicate(timeout=30)[0]}"
    return proc, root, release


def finish(proc: subprocess.Popen) -> str:
    try:
        return proc.communicate(timeout=RUN_S)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def labelled(admin: k8s.CoreV1Api, run_id: str) -> list[str]:
    return [n.metadata.name for n in admin.list_namespace(label_selector=f"{runs.RUN_LABEL}={run_id}").items]


def test_second_full_run_is_refused_while_the_first_lives(tmp_path, admin, admin_api, free_lease):
    first, second = new_id(), new_id()
    proc, _, release = holding_run(tmp_path, first)
    try:
        assert lease_holder(admin_api) == first
        other = project(tmp_path / second, {"suites/test_hold.py": holding(
            tmp_path / "never", tmp_path / "never")}, plugins=ALL_PLUGINS)
        refused = run(other, "--profile=local", "--mode=full", f"--kubeconfig={RUNNER}", f"--run-id={second}",
                      timeout=30)
        out = refused.stdout + refused.stderr
        assert refused.returncode == 2, out
        assert f"another full run ({first}) holds the lease pcf-system/{runs.LEASE_NAME}" in out
        assert "Traceback" not in out and labelled(admin, second) == []
    finally:
        release.write_text("go")
    out = finish(proc)
    assert proc.returncode == 0, out
    assert labelled(admin, first) == [] and lease_holder(admin_api) is None


def test_a_stale_lease_is_taken_over(tmp_path, admin, admin_api, free_lease):
    coordination = k8s.CoordinationV1Api(admin_api)
    try:  # a stale lease of an earlier run may be there; this test writes its own
        coordination.delete_namespaced_lease(runs.LEASE_NAME, "pcf-system")
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
    long_ago = (runs.now() - dt.timedelta(seconds=runs.LEASE_TTL_S * 5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coordination.create_namespaced_lease("pcf-system", {
        "metadata": {"name": runs.LEASE_NAME, "labels": {runs.RUN_LABEL: "zzzz0000",
                                                         runs.MANAGED_BY_LABEL: runs.MANAGED_BY}},
        "spec": {"holderIdentity": "zzzz0000", "leaseDurationSeconds": runs.LEASE_TTL_S,
                 "acquireTime": long_ago, "renewTime": long_ago}})
    run_id = new_id()
    proc, _, release = holding_run(tmp_path, run_id)
    try:
        assert lease_holder(admin_api) == run_id
    finally:
        release.write_text("go")
    out = finish(proc)
    assert proc.returncode == 0, out
    assert lease_holder(admin_api) is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_mid_test_leaves_nothing_behind(tmp_path, admin, admin_api, free_lease, signum):
    run_id = new_id()
    proc, root, _ = holding_run(tmp_path, run_id)
    assert labelled(admin, run_id), "the run's namespace should exist while the test waits"
    proc.send_signal(signum)
    out = finish(proc)
    assert proc.returncode == 2, out
    assert left_by(admin_api, run_id) == []
    assert lease_holder(admin_api) is None
    summary = json.loads((root / "reports" / "summary.json").read_text())
    assert summary["verdict"]["word"] == "interrupted" and summary["run"]["leftovers"] == []
    assert summary["verdict"]["reason"].startswith(f"interrupted by {signum.name}")


def take_lease_over(admin_api, run_id: str) -> None:
    """Another full run's lease, written where the run's own was (as a run taking over a stale one)."""
    coordination = k8s.CoordinationV1Api(admin_api)
    current = coordination.read_namespaced_lease(runs.LEASE_NAME, "pcf-system")
    at = runs.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    current.metadata.labels = {runs.RUN_LABEL: run_id, runs.MANAGED_BY_LABEL: runs.MANAGED_BY}
    current.spec = k8s.V1LeaseSpec(holder_identity=run_id, lease_duration_seconds=runs.LEASE_TTL_S,
                                   acquire_time=at, renew_time=at)
    coordination.replace_namespaced_lease(runs.LEASE_NAME, "pcf-system", current)


def delete_lease(admin_api, _run_id: str) -> None:
    k8s.CoordinationV1Api(admin_api).delete_namespaced_lease(runs.LEASE_NAME, "pcf-system")


@pytest.mark.parametrize("lose,why", [(take_lease_over, r"another full run \({other}\) holds it now"),
                                      # on a shared cluster another run may take a deleted lease first
                                      (delete_lease, r"(it was deleted|another full run \(\w+\) holds it now)")],
                         ids=["taken-over", "deleted"])
def test_a_run_that_loses_its_lease_stops_and_removes_what_it_created(tmp_path, admin_api, free_lease, lose, why):
    run_id, other = new_id(), new_id()
    proc, root, _ = holding_run(tmp_path, run_id)
    assert lease_holder(admin_api) == run_id and left_by(admin_api, run_id)
    try:
        lost_at = time.monotonic()
        lose(admin_api, other)
        out = finish(proc)  # its test holds until RUN_S; losing the lease must end it long before
        stopped_s = time.monotonic() - lost_at
    finally:
        if lease_holder(admin_api) == other:
            delete_lease(admin_api, other)
    assert proc.returncode == 2, out
    verdict = json.loads((root / "reports" / "summary.json").read_text())["verdict"]
    assert verdict["word"] == "interrupted", verdict
    assert re.match(f"lost the run lease pcf-system/{runs.LEASE_NAME}: {why.format(other=other)}; ", verdict["reason"])
    assert left_by(admin_api, run_id) == [] and lease_holder(admin_api) != run_id
    assert stopped_s < runs.LEASE_TTL_S, f"the run went on for {stopped_s:.0f} s after losing its lease"


def test_what_a_killed_run_left_is_swept_once_its_lease_is_stale(tmp_path, admin, admin_api, free_lease):
    run_id = new_id()
    proc, _, _ = holding_run(tmp_path, run_id)
    proc.kill()
    proc.communicate(timeout=30)
    left = labelled(admin, run_id)
    assert left and lease_holder(admin_api) == run_id
    coordination = k8s.CoordinationV1Api(admin_api)

    def view() -> runs.LeaseView:
        lease = coordination.read_namespaced_lease(runs.LEASE_NAME, "pcf-system")
        return runs.LeaseView.of(admin_api.sanitize_for_serialization(lease))

    wait_for(f"the lease of killed run {run_id} to go stale", view, until=lambda v: v.stale(runs.now()),
             timeout=runs.LEASE_TTL_S + 30, interval=1)
    swept = subprocess.run([sys.executable, "-m", "conformance.sweep", "--profile=local", f"--kubeconfig={RUNNER}"],
                           capture_output=True, text=True, timeout=RUN_S)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert f"removed Namespace {left[0]} (run {run_id} is dead" in swept.stdout
    assert labelled(admin, run_id) == [] and lease_holder(admin_api) is None


def test_guard_refuses_what_rbac_would_allow(admin):
    """The runner's RBAC lets it create any namespace and any StorageClass (server dry-runs prove
    it); the guard still refuses both outside the run's scope, and the audit log shows that the
    refused requests never reached the API server."""
    target = kube.resolve_target(str(RUNNER), environ={})
    plain = k8s.ApiClient(kube.configuration(target))
    tag = uuid.uuid4().hex[:6]
    storage_class = {"metadata": {"name": f"it-guard-{tag}"}, "provisioner": "example.org/none"}
    k8s.CoreV1Api(plain).create_namespace({"metadata": {"name": f"it-guard-{tag}"}}, dry_run="All")
    k8s.StorageV1Api(plain).create_storage_class(storage_class, dry_run="All")
    with pytest.raises(k8s.ApiException) as denied:  # and RBAC keeps it out of other namespaces
        k8s.CoreV1Api(plain).create_namespaced_config_map("default", {"metadata": {"name": "x"}}, dry_run="All")
    assert denied.value.status == 403

    identity = runs.RunIdentity(runs.new_run_id(), "full")
    guard = WriteGuard.for_profile("full", [identity.prefix], profiles.load("local").write_allowlist)
    guarded = kube.connect(target, guard, identity.stamp)
    with pytest.raises(WriteRefused, match="not one of the run's"):
        k8s.CoreV1Api(guarded).create_namespace({"metadata": {"name": f"it-refused-{tag}"}})
    with pytest.raises(WriteRefused, match="write_allowlist.cluster_scoped"):
        k8s.StorageV1Api(guarded).create_storage_class({**storage_class, "metadata": {"name": f"it-refused-{tag}"}})

    def logged(name: str) -> bool:
        return any(name in line for line in audit_lines())

    wait_for(f"the dry run of it-guard-{tag} in the audit log", lambda: logged(f"it-guard-{tag}"), timeout=30)
    assert not logged(f"it-refused-{tag}")


READ_ONLY_SUITE = '''
import pytest
from kubernetes import client as k8s


@pytest.mark.control_plane
@pytest.mark.promise("control-plane/it/nodes-listed")
def test_nodes_are_listed(kube, profile):
    """The API MUST list the nodes the profile names."""
    names = {n.metadata.name for n in k8s.CoreV1Api(kube).list_node().items}
    assert set(profile.cluster.nodes) <= names


@pytest.mark.dns
@pytest.mark.promise("dns/it/deliberately-broken")
def test_fails_to_bring_in_the_diagnostics(kube):
    """A check MUST fail here, so that the failure hook's reads are in the audit log too."""
    assert k8s.CoreV1Api(kube).list_namespaced_pod("kube-system").items == ["no such pod"]


@pytest.mark.dns
@pytest.mark.writes
@pytest.mark.promise("dns/it/writes")
def test_would_write(namespace):
    """A write MUST NOT happen in a read-only run."""
'''


def _read_only_audit(since: dt.datetime, marker_client: k8s.ApiClient) -> list[dict]:
    """The reader's audit events since `since`, once the log holds a request made after the run."""
    k8s.CoreV1Api(marker_client).list_namespace(limit=1)
    finished = runs.now() - dt.timedelta(seconds=1)
    wait_for("the audit log to catch up with the run", lambda: [
        e for e in audit_since(since, "platform-conformance:reader")
        if runs.parse_time(e["requestReceivedTimestamp"]) >= finished], timeout=30)
    return audit_since(since, "platform-conformance:reader")


def test_read_only_run_under_the_reader_makes_only_reads(tmp_path):
    root = project(tmp_path, {"suites/test_read.py": READ_ONLY_SUITE}, plugins=ALL_PLUGINS)
    since = runs.now() - dt.timedelta(seconds=1)
    proc = run(root, "--profile=local", "--mode=read-only", f"--kubeconfig={READER}",
               f"--alluredir={tmp_path / 'allure'}", timeout=RUN_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # exactly the deliberate failure
    doc = json.loads((root / "reports" / "summary.json").read_text())
    outcomes = {p["promise"]: p["outcome"] for p in doc["promises"]}
    assert outcomes == {"control-plane/it/nodes-listed": "passed", "dns/it/deliberately-broken": "failed",
                        "dns/it/writes": "skipped"}
    assert "events in kube-system" in doc["promises"][1]["diagnosis"]
    failed = next(json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")
                  if json.loads(p.read_text())["status"] == "failed")
    attached = next(a for a in failed["attachments"] if a["name"] == "diagnosis")
    assert "== events in kube-system (warnings) ==" in (tmp_path / "allure" / attached["source"]).read_text()
    events = _read_only_audit(since, kube.connect(kube.resolve_target(str(READER), environ={}),
                                                  WriteGuard("read-only")))
    assert events, "the run made no request as the reader"
    assert not_read_only(events) == []


def test_a_claimed_component_without_its_crds_fails_naming_them(tmp_path):
    """Claiming Cilium on a cluster without it fails its promises, naming the CRD; the rest
    of the run goes on. (Cilium cannot run on this kernel, so its CRDs are absent whichever
    stack tiers are installed.)"""
    root = project(tmp_path, {"suites/test_mixed.py": '''
        import pytest

        @pytest.mark.cilium
        @pytest.mark.promise("cilium/it/agents-ready")
        def test_agents_ready():
            """Every Cilium agent MUST be ready."""

        @pytest.mark.control_plane
        @pytest.mark.promise("control-plane/it/api-answers")
        def test_api_answers(kube):
            """The API server MUST answer."""
        '''}, plugins=ALL_PLUGINS)
    proc = run(root, "--profile=local", "--mode=read-only", f"--kubeconfig={READER}",
               "--set", "components.cilium.claimed=true", "--set", "components.cilium.namespace=kube-system",
               timeout=RUN_S)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((root / "reports" / "summary.json").read_text())
    by_promise = {p["promise"]: p for p in doc["promises"]}
    assert by_promise["control-plane/it/api-answers"]["outcome"] == "passed"
    failed = by_promise["cilium/it/agents-ready"]
    assert failed["outcome"] == "error"
    assert "CRD ciliumnodes.cilium.io, ciliumendpoints.cilium.io is not installed" in failed["reason"]


def test_the_suites_run_read_only_under_the_reader(tmp_path):
    """Every read-only promise the local profile claims runs (nothing skipped for want of
    setup), and the audit log shows the reader made only reads."""
    repo = Path(__file__).resolve().parents[2]
    since = runs.now() - dt.timedelta(seconds=1)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", f"--profile={installed_profile(tmp_path / 'local.yaml')}",
         "--mode=read-only", f"--kubeconfig={READER}", f"--reports={tmp_path}", "-p", "no:cacheprovider"],
        cwd=repo, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    skipped = {p["promise"]: p["reason"] for p in doc["promises"] if p["outcome"] == "skipped"}
    # Allowed: writes in a read-only run, unclaimed components, and promises the profile says do
    # not apply (their reason names the profile). Not allowed: a skip for want of setup.
    wanting = {p: r for p, r in skipped.items()
               if not (r.startswith(("read-only run:", "component ")) or "profile " in r)}
    assert wanting == {}
    assert any(p["outcome"] == "passed" for p in doc["promises"])
    events = _read_only_audit(since, kube.connect(kube.resolve_target(str(READER), environ={}),
                                                  WriteGuard("read-only")))
    assert not_read_only(events) == []

"""Stopping a part of Argo CD on purpose fails the promises that need it, naming the stopped part.

The application controller (a StatefulSet) or the repo server (a Deployment) is scaled to zero
with the admin identity while the test holds the full-run lease; the Argo CD suite then runs as
a user would, with its named timeouts scaled down, and its summary must show the covering
promises failed by their own checks with a diagnosis naming the stopped workload. The part is
scaled back in `finally` and the test waits until it is ready again (and the run's Applications,
whose finalizer only the controller can run, are gone). A source path removed is the other
breakage of this component: tests/integration/test_argocd_readonly.py breaks it.
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance import run as runs, waiting
from conformance.probes import argocd
from tests.integration.core_runs import run_suites
from tests.integration.test_core_breakage import held  # noqa: F401 - the full-run lease fixture

try:
    from tests.tiers import needs
except ImportError:  # the tiered stack has not landed: Argo CD is installed by hand
    def needs(component: str):
        return pytest.mark.skipif(False, reason=f"{component} installed")

pytestmark = [pytest.mark.serial, needs("argocd")]
SCALE = 0.1  # application_synced (600 s) becomes 60 s: the sync promise gives up in a minute
NS = "argocd"
RECOVER_S = 240.0
KEYWORD = "within_budget or repo_server_and"


def _scale(admin_api, kind: str, name: str, replicas: int) -> None:
    apps = k8s.AppsV1Api(admin_api)
    patch = apps.patch_namespaced_stateful_set_scale if kind == "StatefulSet" else apps.patch_namespaced_deployment_scale
    patch(name, NS, {"spec": {"replicas": replicas}})


def _break_and_run(admin_api, held, tmp_path, kind: str, name: str):  # noqa: F811 - held is the lease
    try:
        _scale(admin_api, kind, name, 0)
        waiting.wait_for(f"{kind} {NS}/{name} to have no ready replica", lambda: argocd.workload(admin_api, NS, kind, name),
                         until=lambda w: w.ready == 0, timeout=RECOVER_S)
        try:
            return run_suites(["suites/test_argocd.py"], tmp_path, keyword=KEYWORD,
                              extra=(f"--timeout-scale={SCALE}", f"--run-id={held.run.run_id}"))
        finally:
            try:
                held.acquire()  # the run released the lease it shared; hold it until Argo CD is whole again
            except runs.LeaseHeld:
                pass  # another run took it in between: restore at once, the run's result still stands
    finally:
        _scale(admin_api, kind, name, 1)
        waiting.wait_for(f"{kind} {NS}/{name} ready again", lambda: argocd.workload(admin_api, NS, kind, name),
                         until=lambda w: w.up, timeout=RECOVER_S)
        waiting.wait_for("the run's Applications to be gone (the controller runs their finalizer)",
                         lambda: [a.name for a in argocd.applications(admin_api, NS) if a not in argocd.platform([a])],
                         until=lambda left: not left, timeout=RECOVER_S)


@pytest.mark.parametrize("kind, name", [("StatefulSet", "argocd-application-controller"),
                                        ("Deployment", "argocd-repo-server")], ids=["controller", "repo-server"])
def test_stopped_part_fails_sync_and_parts_naming_it(admin_api, held, tmp_path, kind, name):  # noqa: F811
    run = _break_and_run(admin_api, held, tmp_path, kind, name)
    assert run.exit_code == 1, run.output
    cause = f"{kind} argocd/{name}: 0/0 replicas ready (scaled to zero: stopped)"
    for promise in ("argocd/parts/up", "argocd/sync/synced-healthy"):
        assert run.failed_by_its_check(promise, cause) == {}, run.output[-6000:]

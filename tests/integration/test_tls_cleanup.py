"""A run leaves no Certificate, Secret, Order, Challenge or DNS record behind: when it ends, and
when it is killed mid-issuance and the sweeper comes after it.

The zone is read through the same RFC2136 adapter the sweeper uses, so "nothing left" means
nothing under the run's id in bind9, and no namespace of the run on the cluster.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from conformance import profile as profiles, waiting
from conformance.cluster import paths
from conformance.outside_dns import from_profile
from tests.integration.core_runs import ROOT, run_suites
from tests.integration.test_core_breakage import held  # noqa: F401 - the full-run lease, held for the run
from tiers import needs
from tinysuite import derived_profile

pytestmark = needs("cert-manager", "cert-manager-issuers")
KILL_WITHIN_S = 240.0  # the DNS-01 answer is in the zone within a minute of the order


@pytest.fixture
def edge_profile(admin_api, tmp_path):
    path = derived_profile(tmp_path / "profile.yaml", components={"cert_manager": {"claimed": True}})
    zone = from_profile(profiles.load(str(path)))
    assert zone is not None, "the derived profile gives no RFC2136 zone (is bind9's TSIG secret file there?)"
    return path, zone


def _left(admin_api, zone, run_id: str) -> dict[str, list[str]]:
    namespaces = [n.metadata.name for n in k8s.CoreV1Api(admin_api).list_namespace().items
                  if n.metadata.name.startswith(f"pcf-{run_id}-")]
    records = [n for n in zone.list_names(zone.zone) if f"pcf-{run_id}-" in n]
    return {"namespaces": namespaces, "records": records}


def test_a_finished_run_leaves_no_record_or_namespace(admin_api, edge_profile, held, tmp_path):  # noqa: F811
    profile, zone = edge_profile
    run_id = held.run.run_id
    run = run_suites(["suites/test_tls.py"], tmp_path, profile=profile, keyword="dns01", extra=(f"--run-id={run_id}",))
    assert run.outcomes("cert-manager/acme/dns01-issued") == {"passed"}, run.output
    assert _left(admin_api, zone, run_id) == {"namespaces": [], "records": []}


def test_a_killed_run_is_swept_with_its_dns_answer(admin_api, edge_profile, held, tmp_path):  # noqa: F811
    profile, zone = edge_profile
    run_id = held.run.run_id  # the killed run shares the test's lease, released once it is dead
    argv = [sys.executable, "-m", "pytest", "suites/test_tls.py", f"--profile={profile}", "--mode=full",
            f"--kubeconfig={paths.kubeconfig('runner')}", f"--reports={tmp_path}", "-q", "-p", "no:cacheprovider",
            "-k", "dns01", f"--run-id={run_id}"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        answer = waiting.wait_for(f"run {run_id}'s DNS-01 answer to be in the zone", lambda: [
            n for n in zone.list_names(zone.zone) if n.startswith("_acme-challenge.") and f"pcf-{run_id}-" in n],
            timeout=KILL_WITHIN_S, interval=1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no teardown, no run-end cleanup: as if the machine died
        proc.wait(timeout=30)
    assert _left(admin_api, zone, run_id)["records"] == answer  # left behind, as a killed run leaves it
    held.release()  # the run is dead: its lease goes, as it would 60 s after its last renewal
    sweep = [sys.executable, "-m", "conformance.sweep", f"--profile={profile}", f"--kubeconfig={paths.kubeconfig('runner')}"]
    swept = waiting.wait_for("the sweeper to remove the killed run", lambda: subprocess.run(
        sweep, cwd=ROOT, capture_output=True, text=True, timeout=600),
        until=lambda p: f"live run {run_id}" not in p.stdout,
        timeout=300.0, interval=10.0)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    left = waiting.wait_for(f"nothing of run {run_id} on the cluster or in the zone",
                            lambda: _left(admin_api, zone, run_id),
                            until=lambda found: found == {"namespaces": [], "records": []}, timeout="namespace_deleted")
    assert left == {"namespaces": [], "records": []}

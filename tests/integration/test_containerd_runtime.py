"""containerd, the local cluster's other runtime: the cluster comes up on it, the node reports
it, the runtime, DNS and networking promises pass against it (judged by a profile that names
containerd), and taking it down leaves nothing behind.

It runs where containerd's build is cached. This takes the shared cluster down and brings it
back on the default runtime (CRI-O) afterwards, so nox runs it with the lifecycle tests, after
the rest.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from conformance import manifests
from conformance.cluster import build, paths, tiers
from host_state import harness, leftovers, reinstall_stack
from tiers import installed_profile

pytestmark = [pytest.mark.lifecycle, pytest.mark.timeout(3600)]
SUITES_S = 900
TIER = "runtime-containerd"


@pytest.fixture(scope="module")
def containerd_cluster():
    """The cluster on containerd (the running one taken down first); back on the default after.
    Like every heavier tier, it runs only where its build is cached (CI builds only the core cold)."""
    lacking = tiers.missing(TIER)
    if lacking:
        pytest.skip(f"tier {TIER} is not built on this machine ({', '.join(lacking)}); "
                    "`nox -s cluster -- --runtime=containerd` builds it")
    up = harness("up", "--runtime=containerd")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "(runtime containerd)" in up.stdout, up.stdout[-2000:]
        reinstall_stack("core")
        yield
    finally:
        baseline = json.loads((paths.STATE / "baseline.json").read_text())
        sysctls = json.loads((paths.STATE / "sysctl-before.json").read_text())
        down = harness("down")
        left = leftovers(baseline, sysctls)
        back = harness("up", f"--runtime={paths.DEFAULT_RUNTIME}")
        assert back.returncode == 0, back.stderr[-3000:]
        reinstall_stack()
        assert down.returncode == 0, down.stderr
        assert {kind: found for kind, found in left.items() if found} == {}, "a containerd cluster left these behind"


def test_the_node_runs_containerd_and_the_core_promises_pass_against_it(containerd_cluster, tmp_path):
    api = manifests.api_client(paths.kubeconfig("admin"))
    (node,) = k8s.CoreV1Api(api).list_node().items
    version = build.programs()["containerd"].version.lstrip("v")
    assert node.status.node_info.container_runtime_version.startswith(f"containerd://{version}")
    profile = installed_profile(tmp_path / "containerd.yaml",
                                components={"runtime": {"name": "containerd", "min_version": "2.0"}})
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_runtime.py", "suites/test_dns.py", "suites/test_networking.py",
         f"--profile={profile}", "--mode=full", f"--kubeconfig={paths.kubeconfig('runner')}", f"--reports={reports}",
         "-q", "-p", "no:cacheprovider"], cwd=paths.REPO, capture_output=True, text=True, timeout=SUITES_S)
    summary = json.loads((reports / "summary.json").read_text())
    failed = {r["promise"]: r["reason"] or "" for r in summary["promises"] if r["outcome"] in ("failed", "error")}
    assert failed == {}, proc.stdout[-5000:]
    ran = {r["promise"] for r in summary["promises"] if r["outcome"] == "passed"}
    assert {"runtime/nodes/expected-runtime", "runtime/pods/start", "runtime/pods/restart", "runtime/pods/exec"} <= ran, \
        sorted(ran)
    assert sum(p.startswith("dns/") for p in ran) >= 10 and any(p.startswith("networking/") for p in ran), sorted(ran)

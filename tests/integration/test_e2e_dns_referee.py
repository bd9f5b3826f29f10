"""With CoreDNS scaled to 0, upstream's own DNS conformance specs fail along with the suite's DNS
promises: two independent referees of the same cluster reach the same verdict.

The test holds the full-run lease (as a referee run, so the sweeper leaves upstream's namespaces
alone) from before it breaks CoreDNS until it has restored it, runs the suite's DNS promises and
then upstream's e2e on a narrow focus, and compares the two verdicts. Upstream's spec fails by
its own check: its querier pods' dig answers never arrive within the spec's 600 s poll, so this
test takes about 12 minutes. A control spec that runs its own CoreDNS (`/coredns` from the agnhost
image) must still pass: the failure is CoreDNS's absence, not a broken test image.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from conformance import referee, run as runs, waiting
from conformance.cluster import paths, tiers
from tests.integration.core_runs import ROOT, run_suites
from tests.integration.test_core_breakage import RECOVER_S, _coredns_ready, holding

pytestmark = pytest.mark.serial

SCALE = 0.25
BROKEN_SPEC = r"\[sig-network\] DNS should provide DNS for services +\[Conformance\]"
CONTROL_SPEC = r"\[sig-network\] DNS should support configurable pod DNS nameservers \[Conformance\]"
REFEREE_LIMIT_S = 25 * 60   # a referee run longer than this hangs; the test fails instead of waiting


@pytest.fixture
def built():
    missing = tiers.missing(referee.TIER)
    if missing:
        pytest.skip(f"tier {referee.TIER} is not built on this machine ({', '.join(missing)}): `nox -s upstream-e2e`")
    referee.prepare_local()   # cached: loads upstream's test images if the runtime lacks them


@pytest.fixture
def held(admin_api):
    """The full-run lease, as a referee run, held from before the break until after the restore."""
    with holding(admin_api, runs.new_referee_id()) as lease:
        yield lease


def _referee(held: runs.RunLease, reports) -> dict:
    argv = [sys.executable, "-m", "conformance.referee", "--profile=local", f"--kubeconfig={paths.kubeconfig('admin')}",
            f"--run-id={held.run.run_id}", f"--reports={reports}", f"--focus={BROKEN_SPEC}", f"--focus={CONTROL_SPEC}"]
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=REFEREE_LIMIT_S)
    finally:
        held.acquire()  # the referee released the lease it shared; hold it until CoreDNS is back
    doc = json.loads((reports / referee.COMPONENT / "summary.json").read_text())
    return {"exit": proc.returncode, "output": proc.stdout[-8000:] + proc.stderr[-3000:],
            "specs": {r["must"]: r for r in doc["promises"]}}


def test_coredns_scaled_to_zero_fails_upstream_dns_specs_and_the_suites_dns_promises(admin_api, built, held,
                                                                                     tmp_path):
    apps, core = k8s.AppsV1Api(admin_api), k8s.CoreV1Api(admin_api)
    before = apps.read_namespaced_deployment("coredns", "kube-system").spec.replicas
    try:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": 0}})
        waiting.wait_for("no CoreDNS pod left", lambda: core.list_namespaced_pod(
            "kube-system", label_selector="k8s-app=kube-dns").items, until=lambda pods: not pods,
            timeout=float(RECOVER_S), interval=1.0)
        try:
            suite = run_suites(["suites/test_dns.py"], tmp_path / "suite", keyword="service_fqdn or nxdomain",
                               extra=(f"--timeout-scale={SCALE}", f"--run-id={held.run.run_id}"))
        finally:
            held.acquire()
        upstream = _referee(held, tmp_path / "upstream")
    finally:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": before}})
        waiting.wait_for("CoreDNS ready again", lambda: _coredns_ready(admin_api), until=lambda n: n >= before,
                         timeout=float(RECOVER_S), interval=1.0)
    verdicts = {**{p: sorted(suite.outcomes(p)) for p in ("dns/resolve/service-fqdn", "dns/resolve/nxdomain")},
                **{must: [r["outcome"]] for must, r in upstream["specs"].items()}}
    print("verdicts with CoreDNS at 0:", json.dumps(verdicts, indent=1))
    assert suite.exit_code == 1, suite.output
    assert upstream["exit"] == 1, upstream["output"]
    for promise in ("dns/resolve/service-fqdn", "dns/resolve/nxdomain"):
        assert suite.failures(promise), (promise, verdicts, suite.output[-3000:])
    broken = [r for must, r in upstream["specs"].items() if "DNS for services" in must]
    control = [r for must, r in upstream["specs"].items() if "configurable pod DNS nameservers" in must]
    assert [r["outcome"] for r in broken] == ["failed"], (verdicts, upstream["output"])
    assert [r["outcome"] for r in control] == ["passed"], (verdicts, upstream["output"])

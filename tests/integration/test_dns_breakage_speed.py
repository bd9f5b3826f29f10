"""With CoreDNS scaled to 0, DNS lookups fail by their own check at once, saying no server answered.

The run uses the real named timeouts (no scale): a lookup whose pod reaches no DNS server must
not wait out `dns_answer` or its resolvers' retries, so each failure's first line says that no
DNS server answered, and the latency check stops asking. How long it takes is measured by
benchmarks/dns_broken.py, not asserted here. CoreDNS is restored in `finally`.
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance import run as runs, waiting
from tests.integration.core_runs import run_suites

pytestmark = pytest.mark.serial

CAUSE = "Deployment kube-system/coredns has 0 of 0 replicas ready"
RECOVER_S = 180.0


@pytest.fixture
def held_lease(admin_api):
    """The full-run lease, taken before DNS goes down so that no other full run starts into it;
    the judging run takes it over under the same run id."""
    lease = runs.RunLease(admin_api, runs.RunIdentity(runs.new_run_id(), "full"))

    def take() -> bool:
        try:
            lease.acquire()
        except runs.LeaseHeld:
            return False
        return True

    waiting.wait_for("the full-run lease", take, timeout=600.0, interval=2)
    lease.start_renewing()
    yield lease
    lease.release()


def test_coredns_at_zero_fails_lookups_at_once_saying_no_server_answered(admin_api, held_lease, tmp_path):
    apps, core = k8s.AppsV1Api(admin_api), k8s.CoreV1Api(admin_api)
    before = apps.read_namespaced_deployment("coredns", "kube-system").spec.replicas
    try:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": 0}})
        waiting.wait_for("no CoreDNS pod left", lambda: core.list_namespaced_pod(
            "kube-system", label_selector="k8s-app=kube-dns").items, until=lambda pods: not pods, timeout=RECOVER_S)
        run = run_suites(["suites/test_dns.py"], tmp_path, keyword="service_fqdn or nxdomain or latency",
                         extra=(f"--run-id={held_lease.run.run_id}",))
    finally:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": before}})
        waiting.wait_for("CoreDNS ready again", lambda: apps.read_namespaced_deployment(
            "coredns", "kube-system").status.ready_replicas or 0, until=lambda n: n >= before, timeout=RECOVER_S)
    assert run.exit_code == 1, run.output
    for promise, said in (("dns/resolve/service-fqdn", "no DNS server answered"),
                          ("dns/resolve/nxdomain", "no DNS server answered"),
                          ("dns/latency/p95-within-budget", "lookups not asked: no DNS server answered")):
        failures = run.failures(promise)
        assert [f["outcome"] for f in failures] == ["failed"] * len(run.promises[promise]), run.output
        for f in failures:
            assert said in (f["reason"] or ""), f"{f['nodeid']}: {f['reason']}"
            assert CAUSE in (f["diagnosis"] or ""), f"{f['nodeid']}: diagnosis does not name the cause"

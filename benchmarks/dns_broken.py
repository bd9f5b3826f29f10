"""Time to the DNS suite's verdict on the local cluster with CoreDNS scaled to 0.

Takes the full-run lease under a new run id (waiting while another full run holds it), so no
other full run starts while DNS is down, scales the CoreDNS Deployment to 0 with the admin
identity, runs `-m dns` in full mode under that run id as the full identity, and
prints the time until the verdict line, the verdict, and each test's outcome and duration from
the JSON summary. CoreDNS is scaled back in `finally`, and the script waits until it is ready
again, so the window without DNS lasts one suite run. It asserts nothing: the issue's target
(the verdict in under 3 minutes) is read off.

    python benchmarks/dns_broken.py [extra pytest arguments]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s

from conformance import manifests, run as runs
from conformance.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
STATE = Path("/var/lib/platform-conformance/local")
LIMIT_S = 1200  # the run before the fix took 13 minutes
NAMESPACE, DEPLOYMENT = "kube-system", "coredns"


def coredns_pods(api: k8s.ApiClient) -> int:
    return len(k8s.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="k8s-app=kube-dns").items)


def run_dns_suite(reports: str, run_id: str, extra: list[str]) -> tuple[float, float, int]:
    """Run `-m dns`; return the seconds until the verdict line, until the process ended, and its exit code."""
    argv = [sys.executable, "-m", "pytest", "suites", "-m", "dns", "--profile=local", "--mode=full", f"--run-id={run_id}",
            f"--kubeconfig={STATE / 'runner.conf'}", f"--reports={reports}", "-q", "-p", "no:cacheprovider", *extra]
    t0 = time.monotonic()
    verdict_at = None
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if line.startswith("verdict:") and verdict_at is None:
                verdict_at = time.monotonic() - t0
            if time.monotonic() - t0 > LIMIT_S:
                proc.kill()
        code = proc.wait(timeout=60)
    wall = time.monotonic() - t0
    return (verdict_at if verdict_at is not None else wall), wall, code


def take(lease: runs.RunLease) -> bool:
    try:
        lease.acquire()
    except runs.LeaseHeld:
        return False
    return True


def main(extra: list[str]) -> int:
    api = manifests.api_client(STATE / "admin.conf")
    apps = k8s.AppsV1Api(api)
    lease = runs.RunLease(api, runs.RunIdentity(runs.new_run_id(), "full"))
    wait_for("the full-run lease", lambda: take(lease), timeout=1200, interval=2)
    lease.start_renewing()
    before = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE).spec.replicas
    with tempfile.TemporaryDirectory(prefix="pcf-bench-") as tmp:
        try:
            apps.patch_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 0}})
            wait_for("no CoreDNS pod left", lambda: coredns_pods(api), until=lambda n: n == 0, timeout=180)
            to_verdict, wall, code = run_dns_suite(tmp, lease.run.run_id, extra)
        finally:
            apps.patch_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE, {"spec": {"replicas": before}})
            wait_for("CoreDNS ready again", lambda: apps.read_namespaced_deployment(
                DEPLOYMENT, NAMESPACE).status.ready_replicas or 0, until=lambda n: n >= before, timeout=180)
            lease.release()
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    print(f"dns suite, CoreDNS at 0: verdict after {to_verdict:.1f} s ({wall:.1f} s wall), exit {code}, "
          f"{summary['verdict']['word']} ({counts}): {summary['verdict']['reason']}")
    for result in sorted(summary["promises"], key=lambda r: -r["duration_s"]):
        print(f"  {result['duration_s']:7.1f} s  {result['outcome']:8} {result['nodeid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

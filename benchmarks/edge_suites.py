"""Wall time of the edge suites on the warm local cluster, and what the edge stack costs at idle.

Runs the LoadBalancer and ingress suites once, as the full identity (the edge tier installed:
`nox -s stack -- --tiers=edge`), then prints the run's wall time, its verdict and every
measurement in the JSON summary (address assignment, pool usage). Then it reads the idle cost
of the edge stack's pods (MetalLB's and Contour's namespaces) from the node's cgroups: memory
in use now, and CPU over a quiet sampling window. It asserts nothing: the issue's target (the
edge suites under 90 s) is read off.

    python benchmarks/edge_suites.py [--idle-seconds 20] [extra pytest arguments]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from conformance import manifests, run as runs  # noqa: E402 - after the checkout is on the path
from conformance.waiting import wait_for  # noqa: E402
from dns_broken import take  # noqa: E402

SUITES = ["suites/test_loadbalancer.py", "suites/test_ingress.py"]
KUBECONFIG = "/var/lib/platform-conformance/local/runner.conf"
ADMIN = "/var/lib/platform-conformance/local/admin.conf"
NAMESPACES = ("metallb-system", "projectcontour")
CGROUP = Path("/sys/fs/cgroup")  # cgroup v1 with the cgroupfs driver, as the local cluster runs
LIMIT_S = 600


def suites(extra: list[str]) -> None:
    # The cluster is shared: take the full-run lease first (waiting for others), so the run's
    # wall time is its own and not a wait in line; the suites run under the same run id.
    lease = runs.RunLease(manifests.api_client(ADMIN), runs.RunIdentity(runs.new_run_id(), "full"))
    wait_for("the full-run lease", lambda: take(lease), timeout=1200, interval=2)
    lease.start_renewing()
    try:
        with tempfile.TemporaryDirectory(prefix="pcf-bench-") as tmp:
            argv = [sys.executable, "-m", "pytest", *SUITES, "--profile=local", "--mode=full",
                    f"--kubeconfig={KUBECONFIG}", f"--reports={tmp}", f"--run-id={lease.run.run_id}", "-q",
                    "-p", "no:cacheprovider", *extra]
            t0 = time.monotonic()
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
            wall = time.monotonic() - t0
            summary = json.loads((Path(tmp) / "summary.json").read_text())
    finally:
        lease.release()
    counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    print(f"edge suites: {wall:.1f} s wall, exit {proc.returncode}, {summary['verdict']['word']} ({counts})")
    for result in summary["promises"]:
        for m in result["measurements"]:
            budget = f" (budget {m['budget']:g} {m['unit']})" if m["budget"] is not None else ""
            print(f"  {m['name']:28} {m['value']:10.3f} {m['unit']}{budget}")


def _pod_dirs(controller: str, uid: str) -> list[Path]:
    return list((CGROUP / controller / "kubepods").glob(f"*/pod{uid}")) + list(
        (CGROUP / controller / "kubepods").glob(f"pod{uid}"))


def idle(seconds: float) -> None:
    """Memory now and CPU over `seconds` of every pod in the edge namespaces."""
    core = k8s.CoreV1Api(manifests.api_client(ADMIN))
    pods = [(p.metadata.namespace, p.metadata.name, p.metadata.uid) for ns in NAMESPACES
            for p in core.list_namespaced_pod(ns).items if p.status.phase == "Running"]

    def cpu_ns(uid: str) -> int:
        return sum(int((d / "cpuacct.usage").read_text()) for d in _pod_dirs("cpuacct", uid))

    before = {uid: cpu_ns(uid) for _, _, uid in pods}
    time.sleep(seconds)
    total_mem = total_cpu = 0.0
    for ns, name, uid in pods:
        mem = sum(int((d / "memory.usage_in_bytes").read_text()) - _cache(d) for d in _pod_dirs("memory", uid))
        cpu = (cpu_ns(uid) - before[uid]) / 1e9 / seconds
        total_mem += mem
        total_cpu += cpu
        print(f"  {ns}/{name:34} {mem / 2**20:8.1f} MiB {cpu * 1000:8.1f} mCPU")
    print(f"edge stack at idle: {total_mem / 2**20:.1f} MiB, {total_cpu * 1000:.1f} mCPU "
          f"({len(pods)} pods, CPU over {seconds:g} s)")


def _cache(pod_dir: Path) -> int:
    """Page cache counts in usage_in_bytes; the working set leaves out what is reclaimable."""
    for line in (pod_dir / "memory.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "total_inactive_file":
            return int(value)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/edge_suites.py")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--no-suites", action="store_true", help="only the idle cost")
    args, extra = parser.parse_known_args(argv)
    if not args.no_suites:
        suites(extra)
    idle(args.idle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

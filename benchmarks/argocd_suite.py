"""Wall time of the Argo CD suite on the warm local cluster, and what idle Argo CD costs the node.

First, Argo CD idle: each pod of the `argocd` namespace's working-set memory and its CPU over a
quiet window, from the kubelet's own summary (`/api/v1/nodes/<node>/proxy/stats/summary`, the
numbers metrics-server would serve), read with the admin identity. Then the Argo CD suite runs
once in full mode as the full identity, and the run's wall time, verdict and every measurement
in its JSON summary are printed. It asserts nothing: the target (under 90 s) is read off.

    python benchmarks/argocd_suite.py [--idle-window=30] [extra pytest arguments]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client as k8s

from conformance import manifests

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "/var/lib/platform-conformance/local/admin.conf"
KUBECONFIG = "/var/lib/platform-conformance/local/runner.conf"
NODE = "pcf-node"
NAMESPACE = "argocd"
LIMIT_S = 900


def _pods(api) -> dict[str, tuple[float, float]]:
    """{pod: (working set MiB, CPU core-seconds so far)} for Argo CD's pods."""
    raw = k8s.CoreV1Api(api).connect_get_node_proxy_with_path(NODE, "stats/summary", _preload_content=False,
                                                              _request_timeout=(5, 30))
    summary = json.loads(raw.data)
    return {p["podRef"]["name"]: (p["memory"]["workingSetBytes"] / 2**20, p["cpu"]["usageCoreNanoSeconds"] / 1e9)
            for p in summary["pods"] if p["podRef"]["namespace"] == NAMESPACE}


def idle(window_s: float) -> None:
    api = manifests.api_client(ADMIN)
    first = _pods(api)
    threading.Event().wait(window_s)  # a quiet window: nothing else to wait for
    second = _pods(api)
    total_mem = total_cpu = 0.0
    print(f"Argo CD idle over {window_s:g} s (kubelet stats summary):")
    for pod in sorted(second):
        mem, cpu = second[pod]
        used = (cpu - first.get(pod, (0, cpu))[1]) / window_s * 1000
        total_mem, total_cpu = total_mem + mem, total_cpu + used
        print(f"  {pod:48} {mem:8.1f} MiB {used:8.1f} millicores")
    print(f"  {'total':48} {total_mem:8.1f} MiB {total_cpu:8.1f} millicores")


def suite(extra: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="pcf-bench-") as tmp:
        argv = [sys.executable, "-m", "pytest", "suites/test_argocd.py", "--profile=local", "--mode=full",
                f"--kubeconfig={KUBECONFIG}", f"--reports={tmp}", "-q", "-p", "no:cacheprovider", *extra]
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
        wall = time.monotonic() - t0
        if proc.returncode == 2:  # could not run (e.g. another full run holds the lease): say why
            print((proc.stdout + proc.stderr)[-2000:])
            return
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    print(f"argocd suite: {wall:.1f} s wall, exit {proc.returncode}, {summary['verdict']['word']} ({counts})")
    for result in summary["promises"]:
        for m in result["measurements"]:
            budget = f" (budget {m['budget']:g} {m['unit']})" if m["budget"] is not None else ""
            print(f"  {m['name']:34} {m['value']:10.3f} {m['unit']}{budget}")


def main(argv: list[str]) -> int:
    window = next((float(a.split("=", 1)[1]) for a in argv if a.startswith("--idle-window=")), 30.0)
    idle(window)
    suite([a for a in argv if not a.startswith("--idle-window=")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

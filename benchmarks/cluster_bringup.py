"""Benchmark of the local cluster: cold build time, warm bring-up time, idle memory.

Prints numbers; asserts nothing. Phases:
  cold   build every pinned program and image into empty caches (Go module and build caches
         included), then bring the cluster up. Leaves the machine's real caches alone.
  warm   take the cluster down and bring it up again with everything cached.
  memory the resident memory of every process of the running cluster, pods included, at idle.
Usage: python benchmarks/cluster_bringup.py [cold] [warm] [memory]   (default: warm memory)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conformance.cluster import host, paths  # noqa: E402

TIMEOUT_S = 5400


def harness(*args: str, env: dict | None = None) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "conformance.cluster", *args], check=True, timeout=TIMEOUT_S,
                   cwd=paths.REPO, env={**os.environ, **(env or {})})
    return time.monotonic() - t0


def cold() -> None:
    with tempfile.TemporaryDirectory(prefix="pcf-cold-") as tmp:
        env = {"GOCACHE": f"{tmp}/go-build", "GOMODCACHE": f"{tmp}/go-mod", "PCF_CACHE": f"{tmp}/pcf"}
        build_s = harness("build", env=env)
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False, timeout=120)
    print(f"cold build (all programs + images, empty Go caches): {build_s:.0f} s")


def warm() -> None:
    down_s = harness("down")
    up_s = harness("up")
    print(f"warm cluster-down: {down_s:.1f} s")
    print(f"warm bring-up (cluster up, Node Ready): {up_s:.1f} s")


def _descendants(root: int) -> set[int]:
    parent = host.parents()
    found, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def memory() -> None:
    # The supervisor's tree holds every component, the runtime's shims and the pods' processes.
    supervisor = int(paths.SUPERVISOR_PID.read_text().strip())
    pids = _descendants(supervisor) | set(host.pids_using((paths.CACHE / "bin", paths.STATE, paths.RUN), marker=paths.RUN))
    rss_kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss_kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    print(f"idle memory of the cluster ({len(pids)} processes, RSS sum): {rss_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    phases = sys.argv[1:] or ["warm", "memory"]
    for phase in phases:
        {"cold": cold, "warm": warm, "memory": memory}[phase]()

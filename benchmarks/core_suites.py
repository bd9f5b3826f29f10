"""Wall time of a full core-suite run on the warm local cluster, and the DNS latencies it measured.

Runs the control-plane, runtime, networking, DNS and Cilium suites once, as the full identity,
the way `nox -s conformance` does (the cluster already up, images preloaded), then prints the
run's wall time, its verdict, and every measurement in the JSON summary (DNS p50 and p95 per
resolver, pod start). It asserts nothing: the issue's target (under 3 minutes) is read off.

    python benchmarks/core_suites.py [extra pytest arguments]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["suites/test_control_plane.py", "suites/test_runtime.py", "suites/test_networking.py",
          "suites/test_dns.py", "suites/test_cilium.py"]
KUBECONFIG = "/var/lib/platform-conformance/local/runner.conf"
LIMIT_S = 900


def main(extra: list[str]) -> int:
    run("core suites", SUITES, extra)
    return 0


def run(label: str, suites: list[str], extra: list[str]) -> None:
    """Run `suites` once as the full identity; print the wall time, verdict and measurements."""
    with tempfile.TemporaryDirectory(prefix="pcf-bench-") as tmp:
        argv = [sys.executable, "-m", "pytest", *suites, "--profile=local",
                "--mode=full", f"--kubeconfig={KUBECONFIG}", f"--reports={tmp}", "-q", "-p", "no:cacheprovider",
                *extra]
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
        wall = time.monotonic() - t0
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    print_run(label, wall, proc.returncode, summary)


def print_run(label: str, wall: float, exit_code: int, summary: dict, width: int = 28) -> None:
    """The run's wall time, exit code and verdict, then every measurement of its summary."""
    counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    print(f"{label}: {wall:.1f} s wall, exit {exit_code}, {summary['verdict']['word']} ({counts})")
    for result in summary["promises"]:
        for m in result["measurements"]:
            budget = f" (budget {m['budget']:g} {m['unit']})" if m["budget"] is not None else ""
            print(f"  {m['name']:{width}} {m['value']:10.3f} {m['unit']}{budget}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Wall time of upstream's e2e as a referee beside the suite's own core run, on the same warm
local cluster.

Runs the core suites once (as benchmarks/core_suites.py does), then `python -m conformance.referee`
with its default focus (the claimed core components' upstream [Conformance] specs: DNS, Services,
Pods), and prints each run's wall time, verdict and counts, and the referee's slowest specs.
It asserts nothing. e2e.test and upstream's test images must be built (`nox -s upstream-e2e`).

    python benchmarks/e2e_referee.py [--focus REGEX ...]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core_suites import ROOT, SUITES, run  # noqa: E402  (the benchmark beside this one)

ADMIN = "/var/lib/platform-conformance/local/admin.conf"
LIMIT_S = 3 * 3600


def main(extra: list[str]) -> int:
    run("suite's core run", SUITES, [])
    with tempfile.TemporaryDirectory(prefix="pcf-bench-e2e-") as tmp:
        argv = [sys.executable, "-m", "conformance.referee", "--profile=local", f"--kubeconfig={ADMIN}",
                f"--reports={tmp}", *extra]
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
        wall = time.monotonic() - t0
        summary_path = Path(tmp) / "kubernetes-e2e" / "summary.json"
        if not summary_path.exists():
            print(f"referee: exit {proc.returncode}, no summary:\n{proc.stderr[-2000:]}")
            return 0
        summary = json.loads(summary_path.read_text())
    counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    print(f"upstream e2e referee: {wall:.1f} s wall ({summary['run'].get('specs_selected')} specs selected), "
          f"exit {proc.returncode}, {summary['verdict']['word']} ({counts})")
    for result in sorted(summary["promises"], key=lambda r: -r["duration_s"])[:5]:
        print(f"  {result['duration_s']:8.1f} s  {result['outcome']:7} {result['must']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

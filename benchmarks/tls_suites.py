"""Wall time of the TLS and golden-path suites on the warm local cluster, their measurements, and
the idle memory and CPU of the certificate stack (cert-manager's three programs, pebble, bind9).

Runs the suites once as the full identity with a profile derived from `local` that claims
cert-manager (as the installed edge tier does), without the `slow` renewal promise unless
`--slow` is given, then prints the wall time, the verdict and every measurement of the JSON
summary. The stack's idle cost is read from /proc before the run: resident memory now, and CPU
time used over a 10-second window. It asserts nothing.

    python benchmarks/tls_suites.py [--slow] [extra pytest arguments]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core_suites import print_run  # noqa: E402 - a sibling script, not a package

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["suites/test_tls.py", "suites/test_golden_path.py"]
KUBECONFIG = "/var/lib/platform-conformance/local/runner.conf"
LIMIT_S = 1800
# The stack's processes: the name the kernel gives them (comm), and a word of their command line
# that tells them from other programs of the same name (MetalLB's controller).
PROGRAMS = {"controller": "--acme-http01-solver-image", "webhook": "--dynamic-serving-ca-secret-name",
            "cainjector": "", "pebble": "", "named": "bind9"}
WINDOW_S = 10.0


def _processes() -> dict[int, str]:
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm in PROGRAMS and PROGRAMS[comm] in cmdline:
            found[int(pid)] = comm
    return found


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle_cost() -> list[tuple[str, float, float]]:
    """(program, resident MiB, CPU millicores over the window) for each process of the stack."""
    procs = _processes()
    before = {pid: _cpu_s(pid) for pid in procs}
    time.sleep(WINDOW_S)  # a measurement window, not a wait on the cluster
    return [(name, _rss_mib(pid), (_cpu_s(pid) - before[pid]) / WINDOW_S * 1000)
            for pid, name in sorted(procs.items(), key=lambda p: p[1])]


def main(argv: list[str]) -> int:
    slow = "--slow" in argv
    extra = [a for a in argv if a != "--slow"]
    cost = idle_cost()
    for name, rss, mcpu in cost:
        print(f"  idle {name:12} {rss:8.1f} MiB {mcpu:8.1f} mCPU")
    print(f"  idle total        {sum(c[1] for c in cost):8.1f} MiB {sum(c[2] for c in cost):8.1f} mCPU")
    with tempfile.TemporaryDirectory(prefix="pcf-bench-") as tmp:
        local = yaml.safe_load((ROOT / "conformance" / "profiles" / "local.yaml").read_text())
        local["components"]["cert_manager"]["claimed"] = True
        local["name"] = "local-edge"
        profile = Path(tmp) / "profile.yaml"
        profile.write_text(yaml.safe_dump(local))
        argv = [sys.executable, "-m", "pytest", *SUITES, f"--profile={profile}", "--mode=full",
                f"--kubeconfig={KUBECONFIG}", f"--reports={tmp}", "-q", "-p", "no:cacheprovider",
                *([] if slow else ["-m", "not slow"]), *extra]
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
        wall = time.monotonic() - t0
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    print_run(f"tls suites{' (with slow)' if slow else ''}", wall, proc.returncode, summary, width=45)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

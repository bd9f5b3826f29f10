"""Wall time of the Vault and secret-sync suites on the warm local cluster, and what the secrets
tier costs at rest.

Runs suites/test_vault.py and suites/test_secret_sync.py once as the full identity, with the
secrets tier claimed (`--set components.vault.claimed=true --set
components.vault_secrets.claimed=true`), then prints the wall time, the verdict and every
measurement (sync time, rotation latency). It then samples, over IDLE_S seconds with no run in
progress, the resident memory and CPU of the tier's processes: OpenBao on the host (its pid
from the listening port) and the External Secrets controller (its container's processes, found
by their command line). It asserts nothing: the target (under 60 s) is read off.

    python benchmarks/secrets_suites.py [extra pytest arguments]
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core_suites  # noqa: E402 - the sibling benchmark's run-and-print

SUITES = ["suites/test_vault.py", "suites/test_secret_sync.py"]
CLAIMED = ("--set=components.vault.claimed=true", "--set=components.vault_secrets.claimed=true")
IDLE_S = 30
TICKS = os.sysconf("SC_CLK_TCK")
# How each of the tier's processes is recognised in /proc/<pid>/cmdline.
PROCESSES = {"openbao": ("bao", "server"), "external-secrets": ("/external-secrets", "--concurrent")}


def _cmdline(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _pids(marks: tuple[str, ...]) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        argv = _cmdline(pid)
        if argv and argv[0].endswith(marks[0]) and any(a.startswith(marks[1]) for a in argv):
            found.append(pid)
    return found


def _sample(pids: list[str]) -> tuple[int, int]:
    """(resident KiB, CPU ticks so far) summed over `pids`."""
    rss = ticks = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rss += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        ticks += int(stat[11]) + int(stat[12])  # utime + stime
    return rss, ticks


def idle_cost(seconds: float = IDLE_S) -> dict[str, tuple[float, float]]:
    """{process: (MiB resident, % of one core)} over `seconds` at rest."""
    pids = {name: _pids(marks) for name, marks in PROCESSES.items()}
    first = {name: _sample(p) for name, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # a benchmark's measuring window, not a wait on the cluster
    elapsed = time.monotonic() - t0
    out = {}
    for name, p in pids.items():
        rss, ticks = _sample(p)
        out[name] = (rss / 1024, 100 * (ticks - first[name][1]) / TICKS / elapsed) if p else (0.0, 0.0)
    return out


def main(extra: list[str]) -> int:
    core_suites.run("secrets suites", SUITES, [*CLAIMED, *extra])
    for name, (mib, cpu) in idle_cost().items():
        print(f"idle {name:18} {mib:8.1f} MiB resident {cpu:6.2f} % of one core (over {IDLE_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

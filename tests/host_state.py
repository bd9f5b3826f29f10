"""The local cluster as the host sees it: the harness run as a user runs it, the stack put back
after a test took the cluster down, and everything of the cluster still on the host."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conformance.cluster import components, host, network, paths

HARNESS_S = 900


def harness(*args: str, env: dict | None = None, timeout: float = HARNESS_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cluster", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=paths.REPO, check=False)


def reinstall_stack(tiers: str = "cached", *components_: str) -> None:
    """Install the stack again as `nox -s tests` did: the core, and each tier built on this machine."""
    proc = subprocess.run([sys.executable, "-m", "conformance.stack", f"--kubeconfig={paths.kubeconfig('admin')}",
                           f"--tiers={tiers}", *components_], capture_output=True, text=True, timeout=HARNESS_S,
                          cwd=paths.REPO, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def leftovers(baseline: dict, sysctls: dict) -> dict[str, list]:
    """Everything of the cluster that is still on the host, by kind; empty lists when clean."""
    rules = network.ruleset()
    roots = (paths.CACHE / "bin", paths.STATE, paths.RUN)
    links = [line.split(":")[1].strip().split("@")[0] for line in
             network.sh("ip", "-o", "link").stdout.splitlines()]
    return {
        "processes": [p for p in host.pids_using(roots, marker=paths.RUN)
                      if (st := host.proc_stat(p)) is not None and st[0] != "Z"],
        # Judged apart from the process scan above: nothing answers on the cluster's ports.
        "listening ports": sorted(set(components.PORTS) & set(host.listeners())),
        "mounts": host.mounts_under((paths.STATE, paths.RUN)) + [m for m in host.mounts_under((Path("/run/netns"),))],
        "network namespaces": [n for n in network.sh("ip", "netns", "list").stdout.split() if n.startswith(("pcf-", "cni-"))],
        "interfaces": [l for l in links if l.startswith(("pcf-", "veth", "kube-"))],
        "iptables rules": network.cluster_rules(rules.iptables) + network.cluster_rules(rules.ip6tables),
        "nft tables": [t for t in rules.nft_tables if t not in baseline["nft_tables"]],
        "ipsets": [s for s in rules.ipsets if s not in baseline["ipsets"]],
        "cgroups": [str(d) for d in host.cgroup_dirs()],
        "sysctls": [k for k, v in sysctls.items() if network.read_sysctl(k) != v],
        "files": [str(p) for p in (paths.STATE, paths.RUN, paths.CNI_CONF) if p.exists()],
    }

"""The local cluster's lifecycle: `cluster-down` leaves nothing behind, bad states get a clear
message instead of a hang, and the cluster comes up again afterwards.

These tests take the shared cluster down, so nox runs this module on its own, after the rest.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.cluster import components, host, network, paths

pytestmark = pytest.mark.lifecycle
HARNESS_S = 600
BAD_STATE_S = 30


def harness(*args: str, env: dict | None = None, timeout: float = HARNESS_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cluster", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=paths.REPO, check=False)


def stack() -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance.stack", f"--kubeconfig={paths.kubeconfig('admin')}"],
                          capture_output=True, text=True, timeout=HARNESS_S, cwd=paths.REPO, check=False)
    assert proc.returncode == 0, proc.stderr


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


@pytest.fixture(scope="module")
def cluster_taken_down():
    """Take the cluster down once, keeping what it recorded about the host before it came up."""
    baseline = json.loads((paths.STATE / "baseline.json").read_text())
    sysctls = json.loads((paths.STATE / "sysctl-before.json").read_text())
    proc = harness("down")
    assert proc.returncode == 0, proc.stderr
    yield baseline, sysctls
    # Whatever the tests did, leave the cluster up for whoever runs next.
    up = harness("up")
    assert up.returncode == 0, up.stderr
    stack()


def test_cluster_down_leaves_nothing_behind(cluster_taken_down):
    found = leftovers(*cluster_taken_down)
    assert {k: v for k, v in found.items() if v} == {}


def test_taken_port_is_named_and_refused(cluster_taken_down):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 6443))
        sock.listen()
        t0 = time.monotonic()
        proc = harness("up", timeout=BAD_STATE_S)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # The message names the port, what the cluster needs it for, and the process holding it: us.
    assert "port 6443 (kube-apiserver) is taken by" in proc.stderr, proc.stderr
    assert f"(pid {os.getpid()})" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < BAD_STATE_S
    assert not paths.STATE.exists(), "a refused bring-up must create nothing"


def test_missing_build_tool_is_named(cluster_taken_down, tmp_path):
    # An empty cache forces builds; a PATH without Go makes the build tool missing.
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "go").exists())
    proc = harness("up", env={"PCF_CACHE": str(tmp_path / "cache"), "PATH": path}, timeout=BAD_STATE_S)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "go is not installed" in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr


def test_too_little_disk_is_named(cluster_taken_down, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True, timeout=10)
    try:
        proc = harness("up", env={"PCF_CACHE": str(small / "cache")}, timeout=BAD_STATE_S)
    finally:
        subprocess.run(["umount", str(small)], check=True, timeout=10)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "GiB free under" in proc.stderr and "fix:" in proc.stderr, proc.stderr


def test_half_dead_cluster_is_replaced(cluster_taken_down):
    up = harness("up")
    assert up.returncode == 0, up.stderr
    # A killed supervisor leaves its state behind; the next bring-up must clear it and start clean.
    os.kill(int(paths.SUPERVISOR_PID.read_text()), signal.SIGKILL)
    again = harness("up")
    assert again.returncode == 0, again.stderr
    assert "remains of a stopped earlier cluster" in again.stdout, again.stdout
    assert json.loads((paths.STATE / "status.json").read_text())["kube-apiserver"]["pid"]


def test_cluster_up_is_idempotent(cluster_taken_down):
    first = harness("up")
    second = harness("up")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "already up and healthy" in second.stdout, second.stdout

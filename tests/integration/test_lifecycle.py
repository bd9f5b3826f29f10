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
import time
from pathlib import Path

import pytest

from conformance.cluster import paths
from host_state import harness, leftovers, reinstall_stack

pytestmark = pytest.mark.lifecycle
BAD_STATE_S = 30


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
    reinstall_stack()


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

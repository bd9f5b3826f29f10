"""Writes outside the Kubernetes API: the profile's prefixes, the guard, names, cleanup and sweep."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from conformance import outside, plan, profile as profiles, sweep
from conformance.guard import WriteRefused
from conformance.outside import OutsideGuard, OutsideWrites
from conformance.profile import ProfileError
from conformance.run import CleanupStack, RunIdentity

AT = dt.datetime(2030, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
RUN = RunIdentity("abcd1234", "full", started=AT)
LOCAL = profiles.load("local")
PRODUCTION = profiles.load("production")


def guard(mode="full", run_ids=("abcd1234",), profile=LOCAL) -> OutsideGuard:
    return OutsideGuard.for_profile(mode, run_ids, profile)


def built(system: str, purpose: str = "thing", run: RunIdentity = RUN, at: dt.datetime = AT) -> str:
    return outside.name(run, outside.scopes(LOCAL)[system], purpose, at)


class FakeSystem:
    """An adapter that keeps its names in a list and records what it was asked."""

    def __init__(self, system: str, kind: str, names=()):
        self.system, self.kind, self.names, self.calls = system, kind, list(names), []

    def list_names(self, prefix: str):
        self.calls.append(("list", prefix))
        return list(self.names)

    def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        self.names.remove(name)


# --- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("system", "expected"), [
    ("vault", "kvv2/platform-conformance/abcd1234-203001021800-kv-round-trip"),
    ("s3", "pcf-abcd1234-203001021800-kv-round-trip"),
    ("dns", "pcf-abcd1234-203001021800-kv-round-trip.pcf.test"),
    ("acme", "pcf-abcd1234-203001021800-kv-round-trip.pcf.test"),
])
def test_every_name_carries_the_prefix_the_run_id_and_an_expiry(system, expected):
    assert built(system, "KV round/trip") == expected
    assert guard().check(system, expected)


def test_long_purposes_are_cut_to_the_systems_limit():
    bucket = built("s3", "x" * 100)
    label = built("dns", "y" * 100).removesuffix(".pcf.test")
    assert len(bucket) == 63 and bucket.startswith("pcf-abcd1234-")
    assert len(label) == 63 and guard().check("dns", label + ".pcf.test")


def test_s3_names_are_run_scoped_names_the_kubernetes_side_knows_too():
    from conformance.run import run_of

    assert run_of(built("s3")) == "abcd1234"


# --- the guard --------------------------------------------------------------------------------

@pytest.mark.parametrize(("system", "name", "allowed"), [
    ("vault", "kvv2/apps/abcd1234-203001021800-x", "kvv2/platform-conformance/*"),
    ("vault", "kvv2/platform-conformance-other/abcd1234-203001021800-x", "kvv2/platform-conformance/*"),
    ("vault", "kvv2/platform-conformance/../apps/abcd1234-203001021800-x", "kvv2/platform-conformance/*"),
    ("s3", "backups", "pcf-*"),
    ("s3", "PCF-abcd1234-203001021800-x", "pcf-*"),
    ("dns", "pcf-abcd1234-203001021800-x.example.org", "pcf-*.pcf.test"),
    ("dns", "www.pcf.test", "pcf-*.pcf.test"),
    ("dns", "pcf.test", "pcf-*.pcf.test"),
    ("acme", "outside.pcf.test", "pcf-*.pcf.test"),
])
def test_names_outside_the_prefix_are_refused_naming_system_name_prefix_and_key(system, name, allowed):
    with pytest.raises(WriteRefused) as refused:
        guard().check(system, name)
    message = str(refused.value)
    assert f"write {system} {name!r}" in message
    assert repr(allowed) in message and f"write_allowlist.outside.{system}.prefix" in message
    assert "local.yaml" in message


def test_a_vault_path_climbing_out_of_the_runs_folder_is_refused():
    climbing = built("vault") + "/../../../apps/x"
    with pytest.raises(WriteRefused, match="not under vault's allowed prefix"):
        guard().check("vault", climbing)
    assert guard().check("vault", built("vault") + "/nested/key")


def test_records_below_the_runs_label_belong_to_the_run():
    assert guard().check("dns", "_acme-challenge." + built("dns"))
    assert guard().check("dns", built("dns").upper() + ".")  # DNS names are case-insensitive


@pytest.mark.parametrize("scoped", ["zzzz9999-203001021800-x", "abcd1234-x", "abcd1234", "x-abcd1234-203001021800"])
def test_a_name_under_the_prefix_must_carry_this_runs_id_and_an_expiry(scoped):
    with pytest.raises(WriteRefused, match="does not carry the run id abcd1234"):
        guard().check("s3", "pcf-" + scoped)


def test_a_read_only_run_writes_to_no_outside_system():
    ro = guard(mode="read-only")
    for system in outside.systems():
        with pytest.raises(WriteRefused, match="read-only run, which writes to no outside system"):
            ro.check(system, built(system))


def test_a_system_the_profile_does_not_declare_gets_no_write():
    name = built("dns")
    with pytest.raises(WriteRefused, match="declares no write_allowlist.outside.dns"):
        guard(profile=PRODUCTION).check("dns", name)
    with pytest.raises(WriteRefused, match="not an outside system the profile can name"):
        guard().check("ldap", "pcf-abcd1234-203001021800-x")
    with pytest.raises(WriteRefused, match="declares no write_allowlist.outside.acme"):
        OutsideWrites(RUN, guard(profile=PRODUCTION), CleanupStack()).name("acme", "order")


def test_the_sweepers_guard_covers_exactly_the_runs_it_removes():
    sweeper = guard(run_ids=("dead0001",))
    assert sweeper.check("s3", "pcf-dead0001-203001021800-x", "delete")
    with pytest.raises(WriteRefused):
        sweeper.check("s3", built("s3"), "delete")


# --- the profile ------------------------------------------------------------------------------

def test_shipped_profiles_declare_their_outside_prefixes():
    assert set(outside.scopes(LOCAL)) == {"vault", "s3", "dns", "acme"}
    assert {s: v.prefix for s, v in outside.scopes(PRODUCTION).items()} == {
        "vault": "kvv2/platform-conformance/", "s3": "pcf-"}
    assert set(outside.scopes(profiles.load("kind"))) == {"vault", "s3"}


@pytest.mark.parametrize(("override", "path", "problem"), [
    ("write_allowlist.outside.vault.prefix=kvv2/", "write_allowlist.outside.vault.prefix",
     "not a folder below a KV mount"),
    ("write_allowlist.outside.vault.prefix=kvv2/platform-conformance", "write_allowlist.outside.vault.prefix",
     "ending in '/'"),
    ("write_allowlist.outside.s3.prefix=Pcf-", "write_allowlist.outside.s3.prefix", "lowercase"),
    ("write_allowlist.outside.s3.prefix=pcf", "write_allowlist.outside.s3.prefix", "'-' last"),
    ("write_allowlist.outside.dns.zone=pcf.test.", "write_allowlist.outside.dns.zone", "without a trailing dot"),
    ("write_allowlist.outside.dns={zone: pcf.test}", "write_allowlist.outside.dns.prefix", "missing"),
    ("write_allowlist.outside.ldap={prefix: pcf-}", "write_allowlist.outside.ldap", "unknown key"),
])
def test_bad_outside_prefixes_end_the_run_at_load(override, path, problem):
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", [override])
    assert caught.value.path == path and problem in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_the_vault_prefix_lies_below_the_claimed_kv_mount():
    with pytest.raises(ProfileError) as caught:
        profiles.load("production", ["write_allowlist.outside.vault.prefix=secret/platform-conformance/"])
    assert caught.value.path == "write_allowlist.outside.vault.prefix"
    assert "components.vault.kv_mount" in str(caught.value) and "kvv2/" in caught.value.fix


# --- cleanup ----------------------------------------------------------------------------------

def test_outside_creates_are_undone_last_in_first_out_with_the_namespaces():
    order = []
    stack = CleanupStack()
    writes = OutsideWrites(RUN, guard(), stack)
    vault, s3 = FakeSystem("vault", "KV path"), FakeSystem("s3", "bucket")
    stack.push("namespace pcf-abcd1234-x", lambda: order.append("namespace"))
    secret, bucket = writes.name("vault", "secret", AT), writes.name("s3", "bucket", AT)
    writes.create(vault, secret, lambda: vault.names.append(secret))
    writes.create(s3, bucket, lambda: s3.names.append(bucket))
    s3.delete = lambda name: order.append(f"s3 {name}")
    vault.delete = lambda name: order.append(f"vault {name}")
    assert stack.close() == []
    assert order == [f"s3 {bucket}", f"vault {secret}", "namespace"]


def test_a_refused_create_sends_nothing_and_owes_nothing():
    stack, sent = CleanupStack(), []
    writes = OutsideWrites(RUN, guard(mode="read-only"), stack)
    with pytest.raises(WriteRefused):
        writes.create(FakeSystem("s3", "bucket"), built("s3"), lambda: sent.append("request"))
    assert sent == [] and len(stack) == 0


def test_cleanup_labels_name_the_system_and_its_kind_of_object():
    stack = CleanupStack()
    bucket = built("s3")
    OutsideWrites(RUN, guard(), stack).create(FakeSystem("s3", "bucket"), bucket, lambda: None)
    s3 = FakeSystem("s3", "bucket")
    s3.delete = lambda name: (_ for _ in ()).throw(RuntimeError("access denied"))
    stack = CleanupStack()
    OutsideWrites(RUN, guard(), stack).create(s3, bucket, lambda: None)
    [failure] = stack.close()
    assert failure.what == f"s3 bucket {bucket}" and "access denied" in str(failure)


# --- the sweeper ------------------------------------------------------------------------------

LIVE = RunIdentity("live0001", "full", started=AT)
DEAD = RunIdentity("dead0001", "full", started=AT)


def test_the_sweeper_takes_dead_runs_and_expired_names_only():
    fresh = AT - dt.timedelta(hours=1)  # expires 5 h from AT
    old = AT - dt.timedelta(hours=7)  # expired an hour ago
    names = {
        "dead": built("s3", "a", DEAD, fresh),
        "live": built("s3", "b", LIVE, fresh),
        "live-expired": built("s3", "c", LIVE, old),
        "foreign": "backups",
        "prefixed-not-a-run": "pcf-system-logs",
        "other-prefix": "abc-dead0001-203001021800-x",
    }
    chosen = {d.found.name: d.reason for d in sweep.select_outside(
        FakeSystem("s3", "bucket"), outside.scopes(LOCAL)["s3"], names.values(), "live0001", AT)}
    assert chosen == {names["dead"]: "run dead0001 is dead (the live lease is held by live0001)",
                      names["live-expired"]: "expired at 2030-01-02T11:00:00Z"}


def test_the_sweeper_removes_through_a_guard_and_a_dry_run_removes_nothing():
    dead = built("dns", "record", DEAD)
    live = built("dns", "record", LIVE)
    dns = FakeSystem("dns", "record", [dead, live, "www.pcf.test"])
    lines = []
    assert sweep.sweep_outside({"dns": dns}, LOCAL, "live0001", AT, True, lines.append) == []
    assert dns.calls == [("list", "pcf.test")]
    assert lines == [f"would remove dns record {dead} (run dead0001 is dead (the live lease is held by live0001))"]
    assert sweep.sweep_outside({"dns": dns}, LOCAL, "live0001", AT, False, lines.append) == []
    assert dns.names == [live, "www.pcf.test"] and ("delete", dead) in dns.calls


def test_one_system_failing_does_not_stop_the_others():
    broken = FakeSystem("vault", "KV path")
    broken.list_names = lambda prefix: (_ for _ in ()).throw(ConnectionError("vault sealed"))
    s3 = FakeSystem("s3", "bucket", [built("s3", "x", DEAD)])
    failures = sweep.sweep_outside({"vault": broken, "s3": s3}, LOCAL, None, AT, False, lambda _: None)
    assert failures == ["vault: listing failed: ConnectionError: vault sealed"] and s3.names == []


def test_adapters_come_from_the_registry_and_may_decline():
    registry = {"s3": f"{__name__}:make_fake", "dns": f"{__name__}:decline"}
    found = outside.adapters(LOCAL, registry)
    assert list(found) == ["s3"] and found["s3"].kind == "bucket"


def make_fake(profile):
    return FakeSystem("s3", "bucket")


def decline(profile):
    return None


# --- the plan ---------------------------------------------------------------------------------

def test_the_plan_names_each_outside_prefix():
    lines = plan.may_create(PRODUCTION, "full")
    assert ("outside the cluster, vault: names kvv2/platform-conformance/<run id>-<expiry>-* "
            "(write_allowlist.outside.vault.prefix)") in lines
    assert not any("dns" in line for line in lines)
    bare = dataclasses.replace(PRODUCTION, write_allowlist=profiles.WriteAllowlist())
    assert "declares no write_allowlist.outside" in plan.may_create(bare, "full")[-1]


def test_the_sweeper_reaches_vault_only_with_an_address_and_a_token(monkeypatch):
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    assert outside.adapters(PRODUCTION) == {}
    monkeypatch.setenv("VAULT_TOKEN", "t")
    vault = outside.adapters(PRODUCTION)["vault"]
    assert (vault.address, vault.mount, vault.kind) == ("https://vault.ocf.berkeley.edu", "kvv2", "KV path")
    assert "vault" not in outside.adapters(LOCAL)  # local claims no Vault and names no address
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    assert outside.adapters(LOCAL)["vault"].mount == "kvv2"

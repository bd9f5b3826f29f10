"""Which sentinels the gate writes for a profile, and how a check reads a record, without a cluster."""
from __future__ import annotations

import pytest

from conformance import gate, profile as profiles
from conformance.sentinels import SENTINELS, _changed
from tinysuite import derived_profile

DATA_HOLDERS = ("metallb", "storage", "object_storage", "vault", "vault_secrets", "argocd")


def kinds(profile: profiles.Profile) -> list[str]:
    return [k for k, s in SENTINELS.items() if s.applies(profile)]


def test_every_claimed_component_that_holds_data_gets_its_sentinel():
    everything = ["configmap", "loadbalancer", "volume", "s3-object", "vault-secret", "application"]
    assert kinds(profiles.load("local")) == everything
    assert kinds(profiles.load("production")) == everything  # its buckets come from ObjectBucketClaims


def test_an_unclaimed_component_gets_none(tmp_path):
    bare = profiles.load(str(derived_profile(tmp_path / "p.yaml", components={
        name: {"claimed": False} for name in DATA_HOLDERS})))
    assert kinds(bare) == ["configmap"]
    only_vault = profiles.load(str(derived_profile(tmp_path / "v.yaml", components={
        **{name: {"claimed": False} for name in DATA_HOLDERS}, "vault": {"claimed": True}})))
    assert "vault-secret" not in kinds(only_vault)  # without the operator nothing syncs it


@pytest.mark.parametrize("now, problem", [
    ("sha256:aa", None),
    ("sha256:bb", "X changed: its content digests to sha256:bb, not sha256:aa as written before"),
])
def test_a_changed_digest_is_named_with_both_digests(now, problem):
    assert _changed("X", now, {"digest": "sha256:aa"}) == problem


def test_a_sentinel_that_was_never_written_is_a_loss_at_the_check():
    record = {"kind": "volume", "where": "the volume sentinel", "unwritten": True}
    assert gate._check(None, record) == "the volume sentinel was never written (gate-before said why)"

"""The local OpenBao's configuration and roles, as written (the live server: tests/integration)."""
from __future__ import annotations

import stat

from conformance.cluster import openbao


def test_the_server_is_configured_like_production_not_dev_mode(tmp_path):
    argv = openbao.config(tmp_path / "bao.hcl", tmp_path / "home", "192.168.77.2")
    text = (tmp_path / "bao.hcl").read_text()
    assert argv[1:] == ["server", f"-config={tmp_path / 'bao.hcl'}"] and "-dev" not in " ".join(argv)
    assert 'storage "raft"' in text and 'address         = "192.168.77.2:8200"' in text
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


def test_the_kept_keys_are_readable_by_their_owner_alone(tmp_path):
    keys = openbao._write(tmp_path / "init.json", '{"unseal_key": "k", "root_token": "t"}', 0o600)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert openbao.root_token(keys) == "t"


def test_the_suite_role_reaches_only_its_prefix():
    policy = openbao.SUITE.policy
    assert f'"{openbao.KV_MOUNT}/data/platform-conformance/*"' in policy
    paths = [line.split('"')[1] for line in policy.strip().splitlines()]
    assert all(p.startswith(f"{openbao.KV_MOUNT}/data/platform-conformance/")
               or p.startswith(f"{openbao.KV_MOUNT}/metadata/platform-conformance/")
               or p == "sys/storage/raft/configuration" for p in paths), paths
    assert (openbao.SUITE.namespace, openbao.SUITE.service_account) == ("pcf-system", "platform-conformance-vault")


def test_the_operator_role_reads_and_never_writes():
    assert "create" not in openbao.OPERATOR.policy and "update" not in openbao.OPERATOR.policy
    assert '"auth/token/lookup-self" { capabilities = ["read"] }' in openbao.OPERATOR.policy
    assert (openbao.OPERATOR.namespace, openbao.OPERATOR.service_account) == ("external-secrets", "external-secrets")

"""The secrets tier broken on purpose fails the matching promises, naming the cause; its cleanup
and the sweeper leave no Vault path or policy behind.

Each breakage test breaks one thing with the harness's own rights (OpenBao sealed with the key
the harness keeps, the operator's role revoked, the operator scaled to zero, a policy that
denies the run prefix added to the operator's role), runs the covering promises as a user would
under the full-run lease, and reads the JSON summary: each promise failed by its own check and
its diagnosis names the cause. The component is restored in `finally`, and the test waits until
the tier serves again. Skipped when the secrets tier is not installed on this machine
(tests/tiers.py).
"""
from __future__ import annotations

import datetime as dt

import httpx
import pytest
from kubernetes import client as k8s

from conformance import outside, profile as profiles, run as runs, sweep, waiting
from conformance.cluster import openbao
from conformance.outside_vault import VaultKV
from conformance.run import CleanupStack, RunIdentity, now
from tests.integration.core_runs import run_suites
from tests.integration.test_core_breakage import held  # noqa: F401 - the full-run lease fixture
from tiers import needs
from tinysuite import derived_profile

pytestmark = [pytest.mark.serial, needs("openbao", "external-secrets")]

ESO_NS = ESO = "external-secrets"
SCALE = 0.25
RECOVER_S = 180
SYNC = "vault-secrets/sync/values-within-budget"
UNSEALED = "vault/seal/every-replica-unsealed"


@pytest.fixture
def claimed(tmp_path):
    """The local profile with the secrets tier claimed."""
    return derived_profile(tmp_path / "secrets.yaml", components={
        "vault": {"claimed": True}, "vault_secrets": {"claimed": True}})


def _operator_ready(admin_api) -> int:
    return k8s.AppsV1Api(admin_api).read_namespaced_deployment(ESO, ESO_NS).status.ready_replicas or 0


def _wait(what, probe, until):
    return waiting.wait_for(what, probe, until=until, timeout=float(RECOVER_S), interval=1.0)


def _judge(held, claimed, tmp_path, tests, keyword, *sets: str):  # noqa: F811 - the lease fixture's value
    try:
        return run_suites(tests, tmp_path / "reports", profile=claimed, keyword=keyword,
                          extra=(f"--timeout-scale={SCALE}", f"--run-id={held.run.run_id}",
                                 *(f"--set={s}" for s in sets)))
    finally:
        # The run released the lease it shared; take it back (another run may have slipped in)
        # and hold it until the component is restored.
        waiting.wait_for("the full-run lease back", held.acquire, until=lambda _: True, timeout=600.0,
                         interval=2.0, retry_on=(runs.LeaseHeld,))


def _cites(run, promise: str, cause: str) -> None:
    """The promise failed by its own check naming `cause`, for the profile's operator (the other
    operator kind's parameter skips, as it does on every run here)."""
    wrong = {node: why for node, why in run.failed_by_its_check(promise, cause).items()
             if not why.startswith("outcome skipped (profile ")}
    assert run.failures(promise) and wrong == {}, run.output[-6000:]


def _no_value_leaked(run, *values: str) -> None:
    for value in values:
        assert value not in run.output


def _root() -> dict:
    return {"X-Vault-Token": openbao.root_token()}


def test_sealed_vault_fails_seal_and_sync_naming_the_seal(held, claimed, tmp_path):  # noqa: F811
    try:
        openbao.seal()
        run = _judge(held, claimed, tmp_path, ["suites/test_vault.py", "suites/test_secret_sync.py"],
                     "every_vault_replica or values_reach")
    finally:
        _wait("OpenBao unsealed and serving again", openbao.ready, until=bool)
    assert run.exit_code == 1, run.output
    _cites(run, UNSEALED, "sealed=True")
    # The suite cannot even log in to write its value: the sync promise errors in setup or fails;
    # either way the run names the sealed server.
    assert "sealed" in run.output.lower(), run.output[-6000:]


def test_revoked_operator_role_fails_sync_naming_the_role(held, claimed, tmp_path, admin_api):  # noqa: F811
    try:
        httpx.delete(f"{openbao.ADDRESS}/v1/auth/{openbao.AUTH_MOUNT}/role/{openbao.OPERATOR.name}",
                     headers=_root(), timeout=10).raise_for_status()
        run = _judge(held, claimed, tmp_path, ["suites/test_secret_sync.py"], "values_reach")
    finally:
        openbao.apply_role(openbao.OPERATOR, openbao.root_token())
    assert run.exit_code == 1, run.output
    _cites(run, SYNC, "invalid role name")


def test_stopped_operator_fails_sync_naming_the_deployment(held, claimed, tmp_path, admin_api):  # noqa: F811
    apps = k8s.AppsV1Api(admin_api)
    try:
        apps.patch_namespaced_deployment_scale(ESO, ESO_NS, {"spec": {"replicas": 0}})
        _wait("no operator pod left", lambda: k8s.CoreV1Api(admin_api).list_namespaced_pod(
            ESO_NS, label_selector="app.kubernetes.io/name=external-secrets").items, until=lambda pods: not pods)
        run = _judge(held, claimed, tmp_path, ["suites/test_secret_sync.py"], "values_reach")
    finally:
        apps.patch_namespaced_deployment_scale(ESO, ESO_NS, {"spec": {"replicas": 1}})
        _wait("the operator ready again", lambda: _operator_ready(admin_api), until=lambda n: n >= 1)
    assert run.exit_code == 1, run.output
    _cites(run, SYNC, "the operator is not running: operator Deployment external-secrets/external-secrets: 0/0")


def test_policy_denying_the_path_fails_sync_naming_the_denial(held, claimed, tmp_path):  # noqa: F811
    profile = profiles.load(claimed)
    stack = CleanupStack()
    run_id = held.run.run_id
    writes = outside.OutsideWrites(RunIdentity(run_id, "full"), outside.OutsideGuard.for_profile(
        "full", [run_id], profile), stack)
    kv = VaultKV(openbao.ADDRESS, openbao.root_token(), openbao.KV_MOUNT)
    name = writes.name("vault", "deny")
    prefix = outside.scopes(profile)["vault"].prefix
    deny = f'path "{prefix.replace(openbao.KV_MOUNT + "/", openbao.KV_MOUNT + "/data/", 1)}*" {{ capabilities = ["deny"] }}'
    try:
        writes.create(kv, name, lambda: kv.put_policy(name, deny))
        httpx.post(f"{openbao.ADDRESS}/v1/auth/{openbao.AUTH_MOUNT}/role/{openbao.OPERATOR.name}", headers=_root(),
                   timeout=10, json={"token_policies": [openbao.OPERATOR.name, name]}).raise_for_status()
        run = _judge(held, claimed, tmp_path, ["suites/test_secret_sync.py"], "values_reach")
    finally:
        openbao.apply_role(openbao.OPERATOR, openbao.root_token())
        assert stack.close() == []
    assert name not in kv.policies(), "the run's policy outlived its cleanup"
    assert run.exit_code == 1, run.output
    _cites(run, SYNC, "permission denied")


def test_an_operator_that_never_rereads_fails_rotation_naming_the_setting(held, claimed, tmp_path):  # noqa: F811
    run = _judge(held, claimed, tmp_path, ["suites/test_secret_sync.py"], "update_in_vault",
                 "components.vault_secrets.refresh_interval=0")
    assert run.exit_code == 1, run.output
    [failure] = run.failures("vault-secrets/rotation/update-reaches-secret")
    assert "ExternalSecret spec.refreshInterval=0" in failure["reason"], failure


def test_a_full_run_leaves_no_vault_path_and_the_sweeper_removes_dead_runs(held, claimed, tmp_path):  # noqa: F811
    kv = VaultKV(openbao.ADDRESS, openbao.root_token(), openbao.KV_MOUNT)
    profile = profiles.load(claimed)
    prefix = outside.scopes(profile)["vault"].prefix
    before = set(kv.list_names(prefix))
    run = _judge(held, claimed, tmp_path, ["suites/test_vault.py", "suites/test_secret_sync.py"],
                 "suite_role or key_subset")
    assert run.exit_code == 0, run.output
    assert set(kv.list_names(prefix)) <= before, "the run left Vault names behind"
    # A killed run's path and policy, expired an hour ago: the sweeper removes both.
    dead = RunIdentity("deadbeef", "full")
    at = now() - dt.timedelta(hours=1) - dead.max_age
    name = outside.name(dead, outside.scopes(profile)["vault"], "leftover", at)
    kv.put(name, {"k": "v"})
    kv.put_policy(name, 'path "kvv2/data/x" { capabilities = ["read"] }')
    failures = sweep.sweep_outside({"vault": kv}, profile, None, now(), False, lambda _: None)
    assert failures == []
    assert kv.read(name) is None and name not in kv.policies()

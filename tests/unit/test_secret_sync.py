"""The sync adapters on the object shapes each operator documents, and the profile's operator fields.

ricoberger's vault-secrets-operator cannot run on a cluster built here (its Go module is refused
by the module proxy), so its adapter is proven on the shapes its documentation and CRD describe:
a VaultSecret's `spec` (path, type, keys, templates) and its `SecretCreated` condition.
"""
from __future__ import annotations

import pytest

from conformance import profile as profiles
from conformance.evidence import digest
from conformance.probes import secret_sync as sync
from conformance.profile import ProfileError

RICO = sync.Ricoberger()
ESO = sync.ExternalSecrets("vault", "10s", "kvv2")
PATH = "kvv2/platform-conformance/abcd1234-203001021800-values"


def vaultsecret(conditions=None, generation=1, observed=None) -> dict:
    status = {"conditions": conditions} if conditions is not None else {}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"apiVersion": "ricoberger.de/v1alpha1", "kind": "VaultSecret",
            "metadata": {"name": "app", "namespace": "team", "generation": generation},
            "spec": {"path": "kvv2/team/app", "type": "Opaque"}, "status": status}


def test_ricoberger_manifest_names_the_path_and_keys_as_its_crd_does():
    m = RICO.manifest("app", "team", PATH, keys=("a", "c"), templates={"dsn": "{{ .user }}@{{ .host }}"})
    assert (m["apiVersion"], m["kind"]) == ("ricoberger.de/v1alpha1", "VaultSecret")
    assert m["spec"] == {"path": PATH, "type": "Opaque", "keys": ["a", "c"],
                         "templates": {"dsn": "{{ .Secrets.user }}@{{ .Secrets.host }}"}}
    assert RICO.manifest("app", "team", PATH)["spec"]["keys"] == []  # empty means every key


@pytest.mark.parametrize("conditions, ready, reason", [
    ([{"type": "SecretCreated", "status": "True", "reason": "Created", "message": "Secret was created"}],
     True, "Created"),
    ([{"type": "SecretCreated", "status": "False", "reason": "FetchFailed",
       "message": "could not get secret from vault: secret not found"}], False, "FetchFailed"),
    ([], None, ""),
    (None, None, ""),
])
def test_ricoberger_state_reads_the_secret_created_condition(conditions, ready, reason):
    state = RICO.state(vaultsecret(conditions))
    assert (state.ready, state.reason, state.secret) == (ready, reason, "app")
    assert state.error is (ready is False)


def test_a_condition_about_an_older_spec_is_marked_stale():
    ok = [{"type": "SecretCreated", "status": "True", "reason": "Created", "message": ""}]
    assert not RICO.state(vaultsecret(ok, generation=3, observed=2)).generation_seen
    assert RICO.state(vaultsecret(ok, generation=3, observed=3)).generation_seen


def test_an_error_message_is_redacted_before_it_is_shown():
    leaky = [{"type": "SecretCreated", "status": "False", "reason": "FetchFailed",
              "message": "login failed with token=hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]
    state = RICO.state(vaultsecret(leaky))
    assert "hvs.AAAA" not in str(state) and "<redacted>" in state.message


def deployment(env: list[dict] | None) -> dict:
    container = {"name": "vault-secrets-operator"} | ({"env": env} if env is not None else {})
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


@pytest.mark.parametrize("env, never, shown", [
    ([{"name": "VAULT_RECONCILIATION_TIME", "value": "60"}], False, "VAULT_RECONCILIATION_TIME=60"),
    ([{"name": "VAULT_RECONCILIATION_TIME", "value": "0"}], True, "VAULT_RECONCILIATION_TIME=0"),
    ([{"name": "VAULT_ADDRESS", "value": "http://vault:8200"}], True, "unset: the operator's default 0"),
    (None, True, "VAULT_RECONCILIATION_TIME"),
])
def test_ricoberger_rotation_setting_comes_from_its_deployment(env, never, shown):
    setting = RICO.refresh(None, deployment(env))
    assert setting.never is never and shown in str(setting)


def test_external_secrets_manifest_reads_through_the_platform_store():
    m = ESO.manifest("app", "team", PATH)
    assert (m["apiVersion"], m["kind"]) == ("external-secrets.io/v1", "ExternalSecret")
    assert m["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "vault"}
    assert m["spec"]["refreshInterval"] == "10s"
    assert m["spec"]["dataFrom"] == [{"extract": {"key": "platform-conformance/abcd1234-203001021800-values"}}]
    subset = ESO.manifest("app", "team", PATH, keys=("a",))["spec"]
    assert subset["data"] == [{"secretKey": "a", "remoteRef": {
        "key": "platform-conformance/abcd1234-203001021800-values", "property": "a"}}]
    templated = ESO.manifest("app", "team", PATH, templates={"dsn": "{{ .user }}"})["spec"]["target"]
    assert templated["template"] == {"engineVersion": "v2", "mergePolicy": "Merge", "data": {"dsn": "{{ .user }}"}}
    with pytest.raises(ValueError, match="not a path in the KV mount 'kvv2'"):
        ESO.manifest("app", "team", "secret/x")


def test_external_secrets_state_follows_ready_and_its_target_name():
    obj = {"metadata": {"name": "app", "namespace": "team", "generation": 1},
           "spec": {"target": {"name": "app-secret"}},
           "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError",
                                      "message": "could not get secret data from provider"}]}}
    state = ESO.state(obj)
    assert (state.ready, state.reason, state.secret) == (False, "SecretSyncedError", "app-secret")
    assert ESO.refresh(obj, None).never is False
    never = sync.ExternalSecrets("vault", "0", "kvv2").refresh(None, None)
    assert never.never and "refreshInterval=0" in str(never)


def test_digests_compare_values_without_showing_them():
    want = sync.digests_of({"password": "hunter2-but-longer"})
    assert want == {"password": digest("hunter2-but-longer")}
    assert "hunter2" not in repr(want)
    seen = sync.SyncedSecret("team", "app", True, want)
    assert "hunter2" not in str(seen)


def test_a_consumer_pod_gets_the_key_as_env_and_the_secret_as_files():
    pod = {"spec": {"containers": [{"name": "probe"}]}}
    out = sync.consumer_pod(pod, "synced", "password", "SYNCED_PASSWORD", "/synced")
    c = out["spec"]["containers"][0]
    assert c["env"] == [{"name": "SYNCED_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "synced", "key": "password"}}}]
    assert c["volumeMounts"] == [{"name": "synced", "mountPath": "/synced", "readOnly": True}]
    assert out["spec"]["volumes"] == [{"name": "synced", "secret": {"secretName": "synced"}}]


def test_operator_health_counts_ready_replicas():
    assert not sync.operator_health(None, "eso", "eso").running
    stopped = sync.operator_health({"spec": {"replicas": 0}, "status": {}}, "eso", "eso")
    assert not stopped.running and "0/0 replicas ready" in str(stopped)
    assert sync.operator_health({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}, "eso", "eso").running


def test_the_profile_picks_the_adapter():
    assert isinstance(sync.adapter(profiles.load("production")), sync.Ricoberger)
    local = profiles.load("local")
    eso = sync.adapter(local)
    assert isinstance(eso, sync.ExternalSecrets) and (eso.store, eso.refresh_interval) == ("vault", "10s")


def test_external_secrets_needs_a_store_and_a_refresh_interval():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["components.vault_secrets.claimed=true", "components.vault.claimed=true",
                                "components.vault_secrets.store=null"])
    assert caught.value.path == "components.vault_secrets.store"
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["components.vault_secrets.refresh_interval=soon"])
    assert "not a duration" in str(caught.value)

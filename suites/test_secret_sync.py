"""Secrets synced from Vault: a value written to Vault reaches a Secret, and on to a pod.

The promises are the same for every operator; the profile names the operator
(components.vault_secrets.operator) and its adapter (conformance/probes/secret_sync.py) writes
the sync object and reads its state. Each test writes its own run-scoped Vault path through
the outside-write guard (removed by its cleanup) and its sync object in its own namespace.
Values are compared by digest, so no value reaches a log, a diagnosis or a report; a failure
lists what stands in the way (a sealed Vault, a stopped operator, a store that cannot log in,
the operator's own warnings).
"""
from __future__ import annotations

import secrets
import time

import pytest

from conformance.evidence import digest
from conformance.pods import start_pod
from conformance.probes import secret_sync as sync
from conformance.probes.workloads import render
from conformance.waiting import WaitTimeout, wait_for
from fixtures.secrets import platform

SYNCED = "synced"


def _value() -> str:
    return secrets.token_urlsafe(18)


def _write(outside_writes, vault_kv, purpose: str, values: dict[str, str]) -> str:
    """A new run-scoped Vault path holding `values`, owed to the cleanup stack."""
    path = outside_writes.name("vault", purpose)
    outside_writes.create(vault_kv, path, lambda: vault_kv.put(path, values))
    return path


def _await(kube, adapter, profile, namespace: str, name: str, what: str, until, limit) -> tuple[sync.Observation, float]:
    """Wait until `until(observation)` or the sync object reports an error; on a miss, fail with
    the last observation and what stands in the way."""
    t0 = time.monotonic()
    try:
        seen = wait_for(f"{what} ({adapter.kind.kind} {namespace}/{name})",
                        lambda: sync.observe(kube, adapter, namespace, name),
                        until=lambda o: until(o) or (o.state is not None and o.state.error),
                        timeout=limit, interval=0.5)
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}\n{_why(kube, adapter, profile, namespace, name)}") from None
    elapsed = time.monotonic() - t0
    assert until(seen), f"{what} did not happen: {seen}\n{_why(kube, adapter, profile, namespace, name)}"
    return seen, elapsed


def _why(kube, adapter, profile, namespace: str, name: str) -> str:
    found = sync.causes(kube, adapter, platform(profile), [namespace])
    return "what stands in the way:\n" + "\n".join(f"  - {c}" for c in found) if found else \
        "nothing found in the way (Vault serves, the operator runs, no warning about the object)"


def _synced(want: dict):
    return lambda o: o.secret.exists and dict(o.secret.digests) == want


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/values-within-budget")
def test_vault_values_reach_a_secret_within_budget(kube, profile, namespace, sync_adapter, vault_kv,
                                                   outside_writes, record_measurement):
    """A sync object for a Vault path MUST produce a Secret with exactly that path's values within budgets.secret_synced_s.

    Timed from the sync object's creation to the Secret holding every value; compared by digest.
    """
    values = {"username": "pcf-user", "password": _value()}
    path = _write(outside_writes, vault_kv, "values", values)
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path))
    seen, elapsed = _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold the Vault values",
                           _synced(sync.digests_of(values)), profile.budget("secret_synced_s"))
    m = record_measurement("secret sync", elapsed, "s", budget="secret_synced_s")
    assert m.value <= m.budget, f"{m}\n{seen}"


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/key-subset")
def test_a_key_subset_selects_only_those_keys(kube, profile, namespace, sync_adapter, vault_kv, outside_writes):
    """A sync object that names a subset of keys MUST produce a Secret with those keys alone."""
    values = {"a": _value(), "b": _value(), "c": _value()}
    path = _write(outside_writes, vault_kv, "subset", values)
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path, keys=("a", "c")))
    _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold keys a and c alone",
           _synced(sync.digests_of({"a": values["a"], "c": values["c"]})), profile.budget("secret_synced_s"))


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/templated-key")
def test_a_templated_key_renders_from_vault_values(kube, profile, namespace, sync_adapter, vault_kv, outside_writes):
    """A templated key MUST render from the Vault values into the Secret."""
    values = {"user": "pcf", "host": "db.example.org"}
    path = _write(outside_writes, vault_kv, "template", values)
    manifest = sync_adapter.manifest(SYNCED, namespace, path, templates={"dsn": "{{ .user }}@{{ .host }}"})
    sync.create(kube, sync_adapter, manifest)
    want = digest(f"{values['user']}@{values['host']}")
    _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold the rendered key dsn",
           lambda o: o.secret.exists and o.secret.digests.get("dsn") == want, profile.budget("secret_synced_s"))


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/missing-path-error")
def test_a_missing_vault_path_gives_an_error_condition_and_no_secret(kube, profile, namespace, sync_adapter,
                                                                    outside_writes):
    """A sync object for a Vault path that holds nothing MUST get an error condition with a readable reason, and no Secret."""
    path = outside_writes.name("vault", "missing")  # named like the run's paths, never written
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path))
    seen = wait_for(f"an error condition on {sync_adapter.kind.kind} {namespace}/{SYNCED}",
                    lambda: sync.observe(kube, sync_adapter, namespace, SYNCED),
                    until=lambda o: o.state is not None and (o.state.error or o.secret.exists),
                    timeout=profile.budget("secret_synced_s"), interval=0.5)
    assert not seen.secret.exists, f"a Secret appeared for a path that holds nothing: {seen}"
    assert seen.state.error and (seen.state.reason or seen.state.message), f"no readable reason: {seen}"


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/delete-removes-secret")
def test_deleting_the_sync_object_removes_its_secret(kube, profile, namespace, sync_adapter, vault_kv, outside_writes):
    """Deleting a sync object MUST remove the Secret it produced."""
    values = {"token": _value()}
    path = _write(outside_writes, vault_kv, "delete", values)
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path))
    _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold the Vault values",
           _synced(sync.digests_of(values)), profile.budget("secret_synced_s"))
    sync.delete(kube, sync_adapter, namespace, SYNCED)
    gone = wait_for(f"Secret {namespace}/{SYNCED} to go with its sync object",
                    lambda: sync.read_secret(kube, namespace, SYNCED), until=lambda s: not s.exists,
                    timeout="object_deleted", interval=0.5)
    assert not gone.exists


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/sync/pod-consumes-env-and-file")
def test_a_pod_consumes_the_synced_secret_as_env_and_file(kube, profile, namespace, sync_adapter, vault_kv,
                                                          outside_writes):
    """A pod MUST see a synced key's value both as an environment variable and as a file.

    Read inside the pod through exec and kept as digests only.
    """
    values = {"password": _value()}
    path = _write(outside_writes, vault_kv, "consume", values)
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path))
    _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold the Vault values",
           _synced(sync.digests_of(values)), profile.budget("secret_synced_s"))
    [pod] = render("client", profile.images, NAME="consumer", ROLE="consumer")
    pod = sync.consumer_pod(pod, SYNCED, "password", "SYNCED_PASSWORD", "/synced")
    started = start_pod(kube, namespace, pod)
    seen = sync.consumed(kube, namespace, started.pod.name, "SYNCED_PASSWORD", "/synced/password")
    want = digest(values["password"])
    assert (seen.env, seen.file) == (want, want), f"{seen}"


@pytest.mark.vault_secrets
@pytest.mark.writes
@pytest.mark.promise("vault-secrets/rotation/update-reaches-secret")
def test_an_update_in_vault_reaches_the_secret_within_budget(kube, profile, namespace, sync_adapter, vault_kv,
                                                              outside_writes, record_measurement):
    """A new version written to Vault MUST reach the synced Secret on the operator's own schedule within budgets.secret_rotated_s.

    An operator configured never to re-read Vault fails here, naming the setting it found.
    """
    section = profile.components.vault_secrets
    if section.rotation == "not-claimed":
        pytest.skip(f"profile {profile.name} does not claim rotation (components.vault_secrets.rotation)")
    values = {"password": _value()}
    path = _write(outside_writes, vault_kv, "rotation", values)
    sync.create(kube, sync_adapter, sync_adapter.manifest(SYNCED, namespace, path))
    _await(kube, sync_adapter, profile, namespace, SYNCED, "the Secret to hold the first version",
           _synced(sync.digests_of(values)), profile.budget("secret_synced_s"))
    obj = sync.read_object(kube, sync_adapter.kind, namespace, SYNCED)
    setting = sync_adapter.refresh(obj, sync.read_deployment(kube, section.namespace, section.deployment))
    assert not setting.never, (f"the operator never re-reads Vault on its own: {setting}. Fix: set it above "
                               "zero, or declare components.vault_secrets.rotation: not-claimed")
    rotated = {"password": _value()}
    outside_writes.write("vault", path, lambda: vault_kv.put(path, rotated))
    _, elapsed = _await(kube, sync_adapter, profile, namespace, SYNCED,
                        f"the Secret to hold the new version ({setting})", _synced(sync.digests_of(rotated)),
                        profile.budget("secret_rotated_s"))
    m = record_measurement("secret rotation", elapsed, "s", budget="secret_rotated_s")
    assert m.value <= m.budget, f"{m} ({setting})"


# --- read-only: every sync object in the cluster is synced ------------------------------------

@pytest.mark.vault_secrets
@pytest.mark.promise("vault-secrets/readonly/every-object-synced")
def test_every_sync_object_has_its_secret_and_no_error(kube, profile, sync_adapter):
    """Every sync object in the cluster MUST report its sync as done, without an error, and its Secret MUST exist.

    The failing ones are listed with the operator's own reasons. An identity that may not read
    Secrets (the read-only one) sees the Secret's existence through the object's own report.
    """
    objects = sync.list_objects(kube, sync_adapter.kind)
    states = [sync_adapter.state(o) for o in objects]
    failing = [s for s in states if s.ready is not True]
    missing = []
    for s in states:
        if s.ready is True:
            try:
                if not sync.read_secret(kube, s.namespace, s.secret).exists:
                    missing.append(s)
            except sync.ApiException as exc:
                if exc.status != 403:
                    raise
    lines = [f"  {s}" for s in failing] + [f"  {s}, but its Secret {s.secret} does not exist" for s in missing]
    assert not lines, (f"{len(lines)} of {len(states)} {sync_adapter.kind.kind} objects are not synced:\n"
                       + "\n".join(lines))

"""Vault: every replica unsealed, an HA leader, the KV mount, and the suite's own narrow login.

Read-only promises ask only the unauthenticated endpoints (seal status, leader), so a read-only
run holds no Vault credential. Full runs log in through Kubernetes auth with the role the
profile names for the suite and prove that its policy reaches the run prefix and nothing else;
every write goes through the outside-write guard, which owes its removal to the cleanup stack.
Vault and OpenBao answer alike; the profile says which one runs (components.vault.server).
"""
from __future__ import annotations

import pytest

from conformance import outside
from conformance.probes import vault


def _replicas(profile) -> tuple[str, ...]:
    section = profile.components.vault
    return section.replicas or (vault.address_of(profile),)


@pytest.mark.vault
@pytest.mark.promise("vault/seal/every-replica-unsealed")
def test_every_vault_replica_is_initialised_and_unsealed(profile):
    """Every Vault replica the profile names MUST be initialised and unsealed.

    Asked through the unauthenticated seal-status endpoint of each replica, so a sealed standby
    shows by name even while the leader serves.
    """
    found = [vault.seal_status(address) for address in _replicas(profile)]
    evidence = "\n".join(f"  {s}" for s in found)
    assert {s.address: (s.initialized, s.sealed) for s in found} == {s.address: (True, False) for s in found}, (
        f"{profile.components.vault.server} is not serving: a sealed server answers no request, "
        f"so every secret read fails until an operator unseals it\n{evidence}")


@pytest.mark.vault
@pytest.mark.promise("vault/ha/active-leader")
def test_vault_has_an_active_ha_leader(profile):
    """Where the profile claims HA, Vault MUST run in HA mode with an active leader every replica agrees on."""
    if not profile.components.vault.ha:
        pytest.skip(f"profile {profile.name} does not claim Vault HA (components.vault.ha: false)")
    found = [vault.leader(address) for address in _replicas(profile)]
    evidence = "\n".join(f"  {s}" for s in found)
    assert all(s.error is None and s.ha_enabled for s in found), f"HA is not enabled everywhere:\n{evidence}"
    leaders = {s.leader_address for s in found}
    assert len(leaders) == 1 and "" not in leaders, f"the replicas name no single active leader:\n{evidence}"


@pytest.mark.vault
@pytest.mark.writes
@pytest.mark.promise("vault/ha/raft-peers")
def test_vault_raft_has_the_voters_the_profile_names(profile, vault_login):
    """Where the profile names a number of Raft voters, Vault's Raft configuration MUST hold exactly that many.

    Read with the suite's token, so its policy must allow reading the Raft configuration.
    """
    want = profile.components.vault.raft_peers
    if want is None:
        pytest.skip(f"profile {profile.name} names no Raft voter count (components.vault.raft_peers)")
    peers = vault.raft_peers(vault_login.address, vault_login.token)
    assert peers.status == 200, f"the Raft configuration could not be read with the suite's token: {peers}"
    assert len(peers.voters) == want, f"Raft voters {list(peers.voters)}, the profile names {want}"


@pytest.mark.vault
@pytest.mark.writes
@pytest.mark.promise("vault/kv/mount-v2")
def test_kv_v2_mount_exists(profile, vault_login):
    """The KV mount the profile names MUST exist and be KV version 2."""
    mount = profile.components.vault.kv_mount
    found = vault.mount(vault_login.address, vault_login.token, mount)
    assert (found.status, found.type, found.version) == (200, "kv", "2"), str(found)


@pytest.mark.vault
@pytest.mark.writes
@pytest.mark.promise("vault/auth/suite-role-run-prefix-only")
def test_suite_role_reaches_the_run_prefix_and_nothing_else(profile, vault_login, vault_kv, outside_writes):
    """Kubernetes auth MUST accept the suite's role, whose token writes, reads and deletes below the run prefix and nowhere else.

    The round trip goes through the outside-write guard; elsewhere in the mount the token only
    reads, and must be denied (403), not merely find nothing (404).
    """
    section = profile.components.vault
    assert vault_login.policies, f"the suite's token carries no policy: {vault_login}"
    name = outside_writes.name("vault", "suite-role")
    outside_writes.create(vault_kv, name, lambda: vault_kv.put(name, {"probe": "round-trip"}))
    assert vault_kv.read(name) == {"probe": "round-trip"}, f"{name} did not read back"
    prefix = outside.scopes(profile)["vault"].prefix
    mount = section.kv_mount.strip("/")
    elsewhere = (f"{mount}/data/{prefix.split('/', 1)[1].rstrip('/')}-elsewhere/x", f"{mount}/data/x")
    found = [vault.request(vault_login.address, vault_login.token, "read", p) for p in elsewhere]
    assert [a.status for a in found] == [403] * len(found), (
        f"the suite's policy ({', '.join(vault_login.policies)}) reaches beyond {prefix}: "
        + "; ".join(str(a) for a in found))

"""LoadBalancer addresses from MetalLB: handed out in time, reachable from outside, given back.

Full runs take addresses only from pools of their own (components.metallb.test_addresses,
autoAssign off), never from the platform's pools, which the read-only promises check instead.
Traffic goes from where the profile's users stand (a network namespace on the LAN locally, the
runner in production), never from a node: a node's own NAT rules answer for a LoadBalancer
address even when nothing announces it. Every failure shows the Service as MetalLB left it:
its addresses, MetalLB's events on it, and which speaker announces it.
"""
from __future__ import annotations

import time

import pytest

from conformance import manifests, run as runs
from conformance.probes import loadbalancer as lb
from conformance.probes import outside
from conformance.probes.workloads import render
from conformance.waiting import WaitTimeout, wait_for
from fixtures.edge import metallb_claim

PORT = 8080


def _create(kube, profile, namespace: str, pool: str, name: str, backend: str = "echo-a",
            addresses: tuple[str, ...] = (), families: tuple[str, ...] = ()) -> None:
    docs = render("loadbalancer", profile.images, NAME=name, BACKEND=backend, POOL=pool)
    if addresses:
        docs[0]["metadata"]["annotations"][lb.ADDRESSES_ANNOTATION] = ",".join(addresses)
    if families:
        docs[0]["spec"]["ipFamilies"] = list(families)
        docs[0]["spec"]["ipFamilyPolicy"] = "RequireDualStack" if len(families) > 1 else "SingleStack"
    manifests.apply(docs, kube, namespace=namespace)


def _families(profile, pool) -> tuple[str, ...]:
    """The families the pool serves that the cluster gives Services too."""
    return pool.families if profile.cluster.dual_stack else tuple(f for f in pool.families if f == "IPv4")


def _addressed(kube, profile, namespace: str, name: str) -> tuple[lb.LoadBalancer, float]:
    """Wait until the Service has an address in each family it asked for; the seconds it took."""
    t0 = time.monotonic()
    ns = metallb_claim(profile).namespace
    got = wait_for(f"Service {namespace}/{name} to get a LoadBalancer address in each family",
                   lambda: lb.service(kube, namespace, name, ns), until=lambda s: s.complete,
                   timeout="lb_address", interval=0.5)
    return got, time.monotonic() - t0


@pytest.fixture(scope="module")
def lb_echo(kube, profile, edge_backends, lb_test_pool):
    """One LoadBalancer Service in front of echo-a from the run's pool, in every family the pool
    and the cluster serve, and how long its addresses took (measured from the create)."""
    families = _families(profile, lb_test_pool)
    t0 = time.monotonic()
    _create(kube, profile, edge_backends.namespace, lb_test_pool.name, "lb-echo", families=families)
    try:
        svc, _ = _addressed(kube, profile, edge_backends.namespace, "lb-echo")
        return svc, time.monotonic() - t0, None
    except WaitTimeout as exc:
        return exc.last_state, time.monotonic() - t0, exc


@pytest.mark.metallb
@pytest.mark.writes
@pytest.mark.promise("metallb/address/assigned-within-budget")
def test_service_gets_address_from_pool_in_each_family(lb_echo, lb_test_pool, profile, record_measurement):
    """A LoadBalancer Service MUST get an address from its pool in each family the pool serves, within budgets.lb_address_s.

    The time runs from the create to the last family's address, as a user waiting on it sees it.
    """
    svc, took, error = lb_echo
    elapsed = record_measurement("LoadBalancer address", took, "s", budget="lb_address_s")
    families = _families(profile, lb_test_pool)
    got = {f: bool(svc and svc.address_of(f) and lb.within(svc.address_of(f), lb_test_pool.ranges))
           for f in families}
    assert got == {f: True for f in families}, f"{svc}\npool {lb_test_pool.name}: {list(lb_test_pool.ranges)}" + (
        f"\n{error}" if error else "")
    assert elapsed.value <= elapsed.budget, f"{elapsed}\n{svc}"


@pytest.mark.metallb
@pytest.mark.writes
@pytest.mark.promise("metallb/traffic/from-outside")
def test_outside_host_reaches_backend_through_address(kube, lb_echo, profile):
    """Traffic from the outside host to a LoadBalancer address MUST reach the Service's backend, in each family.

    The Service is new, so the proxy and the announcement get service_programmed to settle before the check.
    """
    svc, _, error = lb_echo
    assert svc is not None and svc.addresses, f"no address to send to: {svc}\n{error}"
    where = profile.outside

    def ask() -> dict:
        return {a: outside.get_from(where.origin, where.netns, _url(a)) for a in svc.addresses}

    try:
        replies = wait_for(f"{list(svc.addresses)} to answer from the outside", ask,
                           until=lambda r: all(x.status == 200 for x in r.values()),
                           timeout="service_programmed", interval=1)
    except WaitTimeout as exc:
        replies = exc.last_state if isinstance(exc.last_state, dict) else ask()
    ns = metallb_claim(profile).namespace
    got = {a: (r.status, r.body.strip()) for a, r in replies.items()}
    assert got == {a: (200, "echo-a") for a in svc.addresses}, _unanswered(kube, svc, ns, replies)


def _unanswered(kube, svc: lb.LoadBalancer, metallb_namespace: str, replies: dict) -> str:
    """The likely cause first (no speaker, nothing announced), then every reply and the Service."""
    now = lb.service(kube, svc.namespace, svc.name, metallb_namespace)
    return "\n".join([lb.unanswered_because(now, lb.speakers(kube, metallb_namespace)),
                      *map(str, replies.values()), str(now)])


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{PORT}/"


@pytest.mark.metallb
@pytest.mark.writes
@pytest.mark.promise("metallb/address/requested-honoured")
def test_requested_address_is_honoured(kube, profile, edge_backends, lb_test_pool, cleanup, dyn):
    """A Service that asks for addresses of its pool (metallb.universe.tf/loadBalancerIPs) MUST get exactly those.

    The last address of each family's range is asked for, the one MetalLB hands out last on its own.
    """
    wanted = tuple(str(lb.span(r)[1]) for r in lb_test_pool.ranges
                   if lb.family(str(lb.span(r)[1])) in _families(profile, lb_test_pool))
    ns, name = edge_backends.namespace, "lb-pinned"
    _create(kube, profile, ns, lb_test_pool.name, name, addresses=wanted,
            families=tuple(lb.family(a) for a in wanted))
    cleanup.push(f"Service {name}", lambda: runs.delete_and_wait(dyn, "v1", "Service", name, ns))
    try:
        svc, _ = _addressed(kube, profile, ns, name)
    except WaitTimeout as exc:
        svc = exc.last_state
    assert sorted(svc.addresses) == sorted(wanted), f"asked for {list(wanted)}: {svc}\nheld by others: " + \
        ", ".join(f"{a}: {list(lb.holders(kube, a))}" for a in wanted)


@pytest.mark.metallb
@pytest.mark.writes
@pytest.mark.promise("metallb/address/released-on-delete")
def test_address_returns_to_pool_after_delete(kube, dyn, profile, edge_backends, single_address_pool):
    """A deleted Service's address MUST return to its pool: the pool's usage after equals before, and the address is handed out again.

    A pool of one address per family makes "handed out again" exact: the next Service gets the same address.
    """
    pool = single_address_pool("release")
    claim = metallb_claim(profile)
    before = lb.pool(kube, claim.namespace, pool.name)
    ns = edge_backends.namespace
    families = _families(profile, pool)
    _create(kube, profile, ns, pool.name, "lb-first", families=families)
    first, _ = _addressed(kube, profile, ns, "lb-first")
    runs.delete_and_wait(dyn, "v1", "Service", "lb-first", ns)
    try:
        after = wait_for(f"pool {pool.name}'s usage to return to {before.usage}",
                         lambda: lb.pool(kube, claim.namespace, pool.name),
                         until=lambda p: p.assigned == before.assigned, timeout="lb_released", interval=1)
    except WaitTimeout as exc:
        after = exc.last_state
    _create(kube, profile, ns, pool.name, "lb-second", families=families)
    try:
        second, _ = _addressed(kube, profile, ns, "lb-second")
    finally:
        runs.delete_and_wait(dyn, "v1", "Service", "lb-second", ns)
    assert (after.assigned, sorted(second.addresses)) == (before.assigned, sorted(first.addresses)), \
        f"before: {before}\nafter the delete: {after}\nfirst: {first}\nsecond: {second}"


@pytest.mark.metallb
@pytest.mark.writes
@pytest.mark.pool_exhaustion
@pytest.mark.promise("metallb/address/exhausted-pool-says-why")
def test_exhausted_pool_leaves_service_pending_with_reason(kube, dyn, profile, edge_backends, single_address_pool,
                                                           cleanup):
    """A Service asking an exhausted pool MUST stay without an address and carry MetalLB's reason, not hang silently.

    The pool is one of the run's own with one address per family; a first Service takes it, and the second must be refused by name.
    """
    if not profile.policy.allow_pool_exhaustion:
        pytest.skip(f"profile {profile.name} does not allow taking every address of a pool "
                    "(policy.allow_pool_exhaustion: false)")
    pool = single_address_pool("exhaust")
    ns = edge_backends.namespace
    families = _families(profile, pool)
    for name in ("lb-holder", "lb-refused"):
        _create(kube, profile, ns, pool.name, name, families=families)
        cleanup.push(f"Service {name}", lambda name=name: runs.delete_and_wait(dyn, "v1", "Service", name, ns))
        if name == "lb-holder":
            _addressed(kube, profile, ns, name)
    try:
        refused = wait_for(f"MetalLB's reason why Service {ns}/lb-refused has no address",
                           lambda: lb.service(kube, ns, "lb-refused"), until=lambda s: s.pending_reason,
                           timeout="lb_refused", interval=0.5)
    except WaitTimeout as exc:
        refused = exc.last_state
    assert (refused.addresses, "no available IPs" in (refused.pending_reason or "")) == ((), True), \
        f"{refused}\n{lb.pool(kube, pool.namespace, pool.name)}"


# --- read-only: the platform's pools and pinned addresses -----------------------------------

@pytest.mark.metallb
@pytest.mark.promise("metallb/pool/matches-profile")
@pytest.mark.covers("metallb/pool")
def test_pools_exist_with_the_profile_ranges(kube, profile, record_measurement):
    """Every pool the profile names MUST exist with the address ranges the profile gives it, and report its usage.

    Ranges are compared as addresses, however each side spells them; usage is MetalLB's own count.
    """
    claim = metallb_claim(profile)
    found = lb.pools(kube, claim.namespace)
    wanted = {p.pool: p.addresses for p in claim.pool_addresses}
    for name in claim.pools:
        pool = found.get(name)
        for fam, used in zip(("IPv4", "IPv6"), pool.assigned if pool else ()):
            if used is not None:
                record_measurement(f"pool {name} {fam} assigned", used, "addresses")
    got = {n: (n in found, n in found and n in wanted and lb.same_ranges(found[n].addresses, wanted[n]))
           for n in claim.pools}
    want = {n: (True, n in wanted) for n in claim.pools}
    # The pools that differ lead, each beside the profile's ranges; the rest follow as found.
    order = sorted(claim.pools, key=lambda n: got[n] == want[n])
    assert got == want, "\n".join(
        str(found.get(n) or lb.Pool(claim.namespace, n, False)) + (f" (profile: {list(wanted[n])})" if n in wanted else "")
        for n in order)


@pytest.mark.metallb
@pytest.mark.promise("metallb/address/pinned-held-by-expected-service")
def test_pinned_addresses_are_held_by_the_expected_services(kube, profile):
    """Each address the profile pins MUST be held by exactly the Service the profile names, and by no other."""
    claim = metallb_claim(profile)
    if not claim.pinned:
        pytest.skip(f"profile {profile.name} pins no address (components.metallb.pinned)")
    got = {p.address: lb.holders(kube, p.address) for p in claim.pinned}
    want = {p.address: (p.service,) for p in claim.pinned}
    assert got == want, "\n".join(f"{a} is held by {list(got[a]) or 'no Service'}, the profile names {want[a][0]}"
                                  for a in want if got[a] != want[a])

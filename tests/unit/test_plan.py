"""Selection: what runs and what skips on a profile, and what a run may create."""
from __future__ import annotations

import datetime as dt

from conformance import plan, profile as profiles
from conformance.plan import Decision, Item

LOCAL = profiles.load("local")
PRODUCTION = profiles.load("production")


def item(component="dns", *markers, promise="dns/a/b"):
    return Item(f"suites/test_{component}.py::test_x", component, promise, frozenset({component, "promise", *markers}))


def test_claimed_component_runs():
    assert plan.decide(item(), LOCAL, "full") == Decision(True)


def test_unclaimed_component_skips_naming_the_profile():
    d = plan.decide(item("cilium"), LOCAL, "full")
    assert not d.run and d.reason.startswith("component cilium is not claimed by profile local (")
    assert "local.yaml" in d.reason


def test_disruptive_skips_where_the_policy_forbids_it():
    assert plan.decide(item("dns", "disruptive", "writes"), LOCAL, "full").run
    d = plan.decide(item("dns", "disruptive", "writes"), PRODUCTION, "full")
    assert not d.run and "policy.allow_disruptive" in d.reason


def test_pool_exhaustion_and_production_certificates_follow_the_policy():
    assert "policy.allow_pool_exhaustion" in plan.decide(item("metallb", "pool_exhaustion"), PRODUCTION, "full").reason
    d = plan.decide(item("cert_manager", "production_certificate"), PRODUCTION, "full")
    assert "policy.allow_new_production_certificates" in d.reason


def test_read_only_mode_skips_every_write():
    for marker in plan.WRITE_MARKERS:
        d = plan.decide(item("dns", marker), LOCAL, "read-only")
        assert not d.run and d.reason.startswith("read-only run"), marker
    assert plan.decide(item("dns"), LOCAL, "read-only").run


def test_may_create():
    assert plan.may_create(PRODUCTION, "read-only")[0].startswith("nothing")
    full = "\n".join(plan.may_create(PRODUCTION, "full"))
    assert "pcf-<run id>-*" in full and "Lease platform-conformance-full-run" in full
    assert "clusterissuers.cert-manager.io" in full and "applications.argoproj.io in namespace argocd" in full


def test_render_lists_runs_skips_creations_and_waivers():
    p = profiles.load("local", ["waivers=[{promise: dns/a/b, reason: ticket 7, expires: 2030-01-01},"
                                "{promise: dns/c/d, reason: old, expires: 2020-01-01}]"])
    decided = [(item(), plan.decide(item(), p, "full")), (item("cilium"), plan.decide(item("cilium"), p, "full"))]
    text = plan.render(decided, p, "full", today=dt.date(2025, 1, 1))
    assert "will run (1):\n  dns/a/b" in text
    assert "will skip (1):" in text and "component cilium is not claimed" in text
    assert "may create:\n  - namespaces named pcf-<run id>-*" in text
    assert "dns/a/b: until 2030-01-01 (ticket 7)\n" in text and "dns/c/d: until 2020-01-01 (old) EXPIRED, ignored" in text


def test_plan_shows_the_claims_no_promise_will_check():
    p = PRODUCTION
    dns_reads = item()
    dns_writes = Item("suites/test_dns.py::test_w", "dns", "dns/c/d", frozenset({"dns", "writes"}),
                      covers=("cluster/dual-stack",))
    decided = [(i, plan.decide(i, p, "read-only")) for i in (dns_reads, dns_writes)]
    statuses = {s.claim.id: s for s in plan.claims(decided, p)}
    assert statuses["dns"].state == "passed" and statuses["dns"].ran == 1  # "will run", as far as a plan knows
    assert statuses["cluster/dual-stack"].state == "not-selected"  # needs writes, and the run is read-only
    assert statuses["metallb"].state == "unchecked"
    text = plan.render(decided, p, "read-only")
    assert "no promise will check (" in text and "cilium, ingress, metallb, cert_manager, storage" in text
    assert "the run would end incomplete (exit 3)" in text
    assert any(line.split() == ["dns", "1", "will", "run"] for line in text.splitlines())


def test_plan_narrowed_by_the_command_line_says_so():
    decided = [(item(), plan.decide(item(), LOCAL, "full"))]
    text = plan.render(decided, LOCAL, "full", selection=["-m 'dns'"])
    assert "the run is narrowed by -m 'dns'" in text
    assert "runtime                            0 will run; not-selected: no selected promise covers it" in text


def test_a_test_of_a_capability_the_profile_does_not_claim_skips_naming_the_field():
    proxy = Item("suites/test_control_plane.py::test_p", "control_plane", "control-plane/a/b",
                 frozenset({"control_plane"}), covers=("cluster/kube-proxy-replacement",))
    d = plan.decide(proxy, LOCAL, "full")
    assert not d.run and d.reason.startswith("cluster/kube-proxy-replacement is not claimed by profile local (")
    assert d.reason.endswith("(cluster.kube_proxy)") and d.narrowed is None
    assert plan.decide(proxy, PRODUCTION, "read-only").run

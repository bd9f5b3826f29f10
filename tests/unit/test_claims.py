"""Claims: what a profile claims, the covers marker, and each claim's state after a run."""
from __future__ import annotations

import pytest

from conformance import claims, profile as profiles
from conformance.summary import PromiseResult

LOCAL = profiles.load("local")
PRODUCTION = profiles.load("production")


def check(component="dns", outcome="passed", covers=(), reason=None, narrowed=None, promise="dns/a/b"):
    return PromiseResult(f"suites/test_{component}.py::test_{promise.split('/')[-1]}", component, promise,
                         "A pod MUST resolve.", outcome, 0.5, reason, covers=tuple(covers), narrowed=narrowed)


def states(statuses):
    return {s.claim.id: s.state for s in statuses}


def test_components_and_capabilities_come_from_the_profile():
    ids = [c.id for c in claims.of(PRODUCTION)]
    assert ids[:len(PRODUCTION.claimed)] == list(PRODUCTION.claimed)
    assert {"cluster/dual-stack", "cluster/kube-proxy-replacement", "networking/nodeports-from-outside",
            "metallb/pool:pool-1", "cert-manager/issuer:letsencrypt", "storage/class:rbd-nvme",
            "storage/snapshot-class:csi-rbdplugin-snapclass"} <= set(ids)
    by_id = {c.id: c for c in claims.of(PRODUCTION)}
    assert by_id["storage/class:cephfs-hdd"].source == "components.storage.storage_classes"
    assert by_id["metallb"] == claims.Claim("metallb", "component", "components.metallb.claimed")


def test_local_claims_only_what_its_stack_installs():
    assert [c.id for c in claims.of(LOCAL)] == [
        "control_plane", "runtime", "networking", "dns", "ingress", "metallb", "cert_manager", "storage",
        "object_storage", "ceph", "vault", "vault_secrets", "argocd",
        "cluster/dual-stack", "networking/nodeports-from-outside", "networking/egress-world",
        "dns/upstream-forwarder", "metallb/pool:pcf-lan", "cert-manager/issuer:pebble",
        "cert-manager/issuer:pebble-http01", "storage/class:local-path"]


def test_a_capability_of_an_unclaimed_component_is_not_claimed():
    p = profiles.load("production", ["components.storage.claimed=false", "cluster.kube_proxy=expected"])
    ids = {c.id for c in claims.of(p)}
    assert not any(i.startswith("storage/") for i in ids) and "cluster/kube-proxy-replacement" not in ids


@pytest.mark.parametrize(("args", "kwargs", "params", "problem"), [
    (("cluster/dual-stack",), {}, {}, None),
    (("storage/class",), {"by": "storage_class"}, {"storage_class": "rbd-nvme"}, None),
    (("storage/class:rbd-nvme",), {}, {}, None),
    (("storage/expansion",), {}, {}, "names no capability kind"),
    ((), {}, {}, "is malformed"),
    (("cluster/dual-stack",), {"by": "family"}, {"family": 4}, "is claimed as a whole and has no names"),
    (("storage/class",), {"by": "storage_class"}, {}, "the test has no parameter 'storage_class'"),
    (("storage/class:a",), {"by": "storage_class"}, {"storage_class": "b"}, "gives the name twice"),
    (("storage/class",), {"name": "x"}, {}, "is malformed"),
])
def test_covers_marker_rules(args, kwargs, params, problem):
    found = claims.marker_problems(args, kwargs, params)
    assert (found == []) if problem is None else any(problem in p for p in found), found


def test_covers_resolves_to_claim_ids_on_the_profile():
    assert claims.covered(PRODUCTION, ("cluster/dual-stack",), {}, {}) == ("cluster/dual-stack",)
    assert claims.covered(PRODUCTION, ("storage/class",), {"by": "sc"}, {"sc": "rbd-nvme"}) == ("storage/class:rbd-nvme",)
    assert claims.covered(PRODUCTION, ("metallb/pool",), {}, {}) == ("metallb/pool:pool-1",)
    unclaimed = profiles.load("local", ["components.metallb.claimed=false"])
    assert claims.covered(unclaimed, ("metallb/pool",), {}, {}) == ()  # no pool without MetalLB


def test_a_claim_with_a_promise_run_is_checked_and_a_failure_shows():
    c = [claims.Claim("dns", "component", "components.dns.claimed")]
    [s] = claims.account(c, [check(), check(outcome="skipped", reason="why not")])
    assert (s.state, s.ran, s.passed, s.skipped, s.why) == ("passed", 1, 1, 1, None)
    [s] = claims.account(c, [check(outcome="error"), check()])
    assert (s.state, s.failed) == ("failed", 1)
    [s] = claims.account(c, [check(outcome="waived")])
    assert (s.state, s.waived) == ("passed", 1)


def test_a_claimed_component_with_no_promise_is_unchecked():
    [s] = claims.account([claims.Claim("metallb", "component", "components.metallb.claimed")], [check()])
    assert s.state == "unchecked" and s.why == "no promise covers it: no suite checks it yet"


def test_a_claim_whose_promises_all_skipped_is_unchecked_with_their_reasons():
    dual = claims.Claim("cluster/dual-stack", "cluster/dual-stack", "cluster.dual_stack")
    skipped = [check(outcome="skipped", covers=["cluster/dual-stack"], reason="no IPv6 address on the probe pod"),
               check(component="networking", outcome="skipped", covers=["cluster/dual-stack"], reason="same")]
    [s] = claims.account([dual], skipped + [check()])  # a passing check that covers something else
    assert (s.state, s.skipped) == ("unchecked", 2)
    assert s.why == "none of its 2 promise check(s) ran: no IPv6 address on the probe pod; same"


def test_a_capability_is_checked_only_by_the_tests_that_cover_it():
    c = claims.of(LOCAL)
    found = states(claims.account(c, [check(covers=["dns/upstream-forwarder"]), check("control_plane"),
                                       check("runtime"), check("networking")]))
    assert found["dns/upstream-forwarder"] == "passed" and found["cluster/dual-stack"] == "unchecked"


def test_read_only_mode_makes_write_checks_not_selected_not_unchecked():
    net = claims.Claim("networking", "component", "components.networking.claimed")
    mode = "read-only run (--mode=read-only selects no promise that writes)"
    [s] = claims.account([net], [check("networking", "skipped", narrowed=mode, reason="needs writes")])
    assert s.state == "not-selected" and s.why == f"{mode} (1 promise check(s))"
    # the mode does not excuse a claim that has no promise at all
    [s] = claims.account([claims.Claim("metallb", "component", "x")], [check("networking", "skipped", narrowed=mode)])
    assert s.state == "unchecked"


def test_a_command_line_selection_makes_claims_it_left_out_not_selected():
    c = [claims.Claim("dns", "component", "x"), claims.Claim("metallb", "component", "y")]
    found = claims.account(c, [check()], ["-m 'dns'"])
    assert states(found) == {"dns": "passed", "metallb": "not-selected"}
    assert found[1].why == "no selected promise covers it (narrowed by -m 'dns')"
    # what the selection did pick must still run: all of it skipped is unchecked
    assert states(claims.account(c[:1], [check(outcome="skipped")], ["-k 'fqdn'"])) == {"dns": "unchecked"}


def test_render_lists_each_claim_and_why_the_unchecked_ones_are():
    text = claims.render(claims.account(claims.of(LOCAL), [check(), check("runtime", "failed")]))
    lines = text.splitlines()
    assert lines[0].split() == ["claim", "state", "ran", "passed", "failed", "waived", "skipped"]
    assert lines[2].split() == ["control_plane", "UNCHECKED", "0", "0", "0", "0", "0"]
    assert lines[3].split() == ["runtime", "failed", "1", "0", "1", "0", "0"]
    assert "unchecked:\n  control_plane (components.control_plane.claimed): no promise covers it" in text


def test_a_test_of_unclaimed_capabilities_does_not_check_its_component():
    """control_plane's kube-proxy check skips where kube-proxy runs; selected alone it leaves
    control_plane not selected, not unchecked, and it never stands for control_plane."""
    proxy = check("control_plane", "skipped", covers=["cluster/kube-proxy-replacement"], reason="not claimed")
    assert states(claims.account(claims.of(LOCAL)[:1], [proxy], ["-k 'covers'"])) == {"control_plane": "not-selected"}
    ran = check("control_plane", "passed", covers=["cluster/kube-proxy-replacement"])
    assert states(claims.account(claims.of(LOCAL)[:1], [ran])) == {"control_plane": "unchecked"}
    assert states(claims.account(claims.of(PRODUCTION), [ran]))["control_plane"] == "passed"

"""The sweeper's choice: dead runs' objects and anything expired go; nothing else is touched."""
from __future__ import annotations

import datetime as dt

import pytest

from conformance import profile as profiles, sweep
from conformance.guard import WriteRefused, parse

NOW = dt.datetime(2030, 1, 2, 12, 0, tzinfo=dt.timezone.utc)
LATER = "2030-01-02T18:00:00Z"
EARLIER = "2030-01-02T06:00:00Z"


def obj(name, run=None, expires=None, kind="Namespace", namespace=None, managed=True):
    labels = {}
    if run:
        labels["platform-conformance.io/run"] = run
    if managed:
        labels["app.kubernetes.io/managed-by"] = "platform-conformance"
    notes = {"platform-conformance.io/expires": expires} if expires else {}
    meta = {"name": name, "labels": labels, "annotations": notes}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def chosen(objects, live):
    return {d.found.name: d.reason for d in sweep.select(objects, live, NOW)}


def test_dead_runs_objects_go_and_the_live_runs_stay():
    objects = [obj("pcf-live0001-a", "live0001", LATER), obj("pcf-dead0001-a", "dead0001", LATER)]
    assert chosen(objects, "live0001") == {
        "pcf-dead0001-a": "run dead0001 is dead (the live lease is held by live0001)"}


def test_without_a_live_lease_every_run_is_dead():
    objects = [obj("pcf-aaaa0001-a", "aaaa0001", LATER), obj("pcf-bbbb0001-a", "bbbb0001")]
    assert set(chosen(objects, None)) == {"pcf-aaaa0001-a", "pcf-bbbb0001-a"}
    assert "no run holds a live lease" in chosen(objects, None)["pcf-aaaa0001-a"]


def test_expired_objects_go_even_when_their_run_lives():
    objects = [obj("pcf-live0001-old", "live0001", EARLIER), obj("pcf-live0001-new", "live0001", LATER)]
    assert chosen(objects, "live0001") == {"pcf-live0001-old": "expired at 2030-01-02T06:00:00Z"}


def test_upgrade_gate_sentinels_outlive_dead_runs_and_go_only_past_their_own_expiry():
    objects = [obj("pcf-gateab12-sentinels", "gateab12", LATER), obj("pcf-gatecd34-sentinels", "gatecd34", EARLIER)]
    assert chosen(objects, None) == {"pcf-gatecd34-sentinels": "expired at 2030-01-02T06:00:00Z"}


def test_a_run_id_is_never_a_gate_id():
    from conformance import run as runs

    assert all(not runs.is_gate(runs.new_run_id()) for _ in range(2000))
    gate = runs.new_gate_id()
    assert runs.is_gate(gate) and runs.RUN_ID.match(gate)


def test_objects_not_labelled_by_a_run_are_never_taken():
    objects = [obj("kube-system", managed=False), obj("someone-else", run="dead0001", managed=False),
               obj("no-run-label", run=None, expires=EARLIER)]
    assert chosen(objects, None) == {}


def test_unreadable_expiry_leaves_the_decision_to_the_run_label():
    objects = [obj("pcf-live0001-x", "live0001", "soon"), obj("pcf-dead0001-x", "dead0001", "soon")]
    assert set(chosen(objects, "live0001")) == {"pcf-dead0001-x"}


def test_the_sweepers_guard_covers_exactly_the_runs_it_removes():
    doomed = sweep.select([obj("pcf-dead0001-a", "dead0001")], "live0001", NOW)
    guard = sweep.scope(doomed, profiles.load("production"))
    assert guard.decide(parse("DELETE", "https://h/api/v1/namespaces/pcf-dead0001-a"))
    assert guard.decide(parse("DELETE", "https://h/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/x"))
    for path in ("/api/v1/namespaces/pcf-live0001-a", "/api/v1/namespaces/kube-system",
                 "/apis/apps/v1/namespaces/default/deployments/x"):
        with pytest.raises(WriteRefused):
            guard.decide(parse("DELETE", "https://h" + path))


def test_kinds_to_list_follow_the_profile():
    listed = [(k.resource, k.namespace) for k in sweep.kinds(profiles.load("production"))]
    assert ("namespaces", None) == listed[-1]  # namespaces last: their content goes with them
    assert ("clusterissuers.cert-manager.io", None) in listed
    assert ("applications.argoproj.io", "argocd") in listed
    assert ("configmaps", "pcf-system") in listed and ("leases.coordination.k8s.io", "pcf-system") in listed


def e2e_namespace(name, labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


E2E = {"e2e-framework": "dns", "e2e-run": "0f1c2d3e-4a5b-6c7d-8e9f-a0b1c2d3e4f5"}


def test_upstream_e2e_namespaces_go_unless_a_referee_run_holds_the_lease():
    from conformance import run as runs

    spaces = [e2e_namespace("dns-1234", E2E), e2e_namespace("half-labelled", {"e2e-framework": "dns"}),
              e2e_namespace("kube-system", {})]
    assert {d.found.name for d in sweep.select_e2e(spaces, None)} == {"dns-1234"}
    assert {d.found.name for d in sweep.select_e2e(spaces, "live0001")} == {"dns-1234"}
    referee = runs.new_referee_id()
    assert runs.is_referee(referee) and runs.RUN_ID.match(referee)
    assert sweep.select_e2e(spaces, referee) == []
    assert all(not runs.is_referee(runs.new_run_id()) for _ in range(2000))


def test_the_guard_lets_the_sweeper_delete_exactly_the_e2e_namespaces_it_chose():
    doomed = sweep.select_e2e([e2e_namespace("dns-1234", E2E)], None)
    guard = sweep.scope(doomed, profiles.load("local"), exact=["dns-1234"])
    assert guard.decide(parse("DELETE", "https://h/api/v1/namespaces/dns-1234"))
    with pytest.raises(WriteRefused):
        guard.decide(parse("DELETE", "https://h/api/v1/namespaces/kube-system"))

"""Argo CD probe judgements on Application objects shaped as Argo CD writes them."""
from __future__ import annotations

import pytest

from conformance import profile as profiles
from conformance.probes import argocd
from conformance.run import MANAGED_BY, MANAGED_BY_LABEL

AUTO = argocd.Policy(True, False, False)
MANUAL = argocd.Policy(False, False, False)


def _app(name, sync="Synced", health="Healthy", policy=None, resources=(), conditions=(), labels=None, path="apps"):
    return {
        "apiVersion": argocd.API_VERSION, "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "labels": labels or {}},
        "spec": {"project": "default", "source": {"repoURL": "https://github.com/ocf/cluster", "path": path,
                                                   "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                 "syncPolicy": policy if policy is not None else {"automated": {}}},
        "status": {"sync": {"status": sync, "revision": "0123456789abcdef0123456789abcdef01234567"},
                   "health": {"status": health},
                   "conditions": [{"type": t, "message": m} for t, m in conditions],
                   "resources": [dict(kind=k, name=n, namespace=ns, status=s, **({"health": {"status": h}} if h else {}))
                                 for k, ns, n, s, h in resources]},
    }


def test_parse_reads_argo_cds_own_verdicts():
    app = argocd.parse(_app("web", sync="OutOfSync", health="Missing",
                            conditions=[("ComparisonError", "apps/web: app path does not exist")],
                            resources=[("ConfigMap", "web", "settings", "OutOfSync", ""),
                                       ("Deployment", "web", "web", "Synced", "Healthy")]))
    assert (app.sync, app.health, app.synced_and_healthy) == ("OutOfSync", "Missing", False)
    assert [str(r) for r in app.out_of_sync] == ["ConfigMap web/settings (OutOfSync)"]
    assert "condition ComparisonError: apps/web: app path does not exist" in str(app)


@pytest.mark.parametrize("policy, want", [
    ({"automated": {}}, AUTO),
    ({"automated": {"prune": True, "selfHeal": True}}, argocd.Policy(True, True, True)),
    ({}, MANUAL),
    ({"automated": {"enabled": False}}, MANUAL),
])
def test_parse_reads_the_sync_policy(policy, want):
    assert argocd.parse(_app("x", policy=policy)).policy == want


def test_policy_mismatches_name_each_application_with_both_policies():
    apps = [argocd.parse(_app("bootstrap", policy={})), argocd.parse(_app("dns")),
            argocd.parse(_app("vault", policy={"automated": {"selfHeal": True}})),
            argocd.parse(_app("rook", policy={}))]
    assert argocd.policy_mismatches(apps, AUTO, ["bootstrap"]) == {
        "vault": ("automated (prune=false, selfHeal=true)", "automated (prune=false, selfHeal=false)"),
        "rook": ("manual", "automated (prune=false, selfHeal=false)"),
    }


def test_app_of_apps_agreement_finds_missing_and_undeclared_children():
    parent = argocd.parse(_app("bootstrap", resources=[("Application", "argocd", "dns", "Synced", "Healthy"),
                                                       ("Application", "argocd", "ghost", "OutOfSync", "Missing")]))
    apps = [parent, argocd.parse(_app("dns")), argocd.parse(_app("stray"))]
    found = argocd.agreement(parent, apps)
    assert (found.declared, found.missing, found.undeclared, found.agrees) == (("dns", "ghost"), ("ghost",),
                                                                               ("stray",), False)


def test_sync_changes_report_only_applications_that_left_synced():
    before = {"a": "Synced", "b": "OutOfSync", "c": "Synced", "d": "Synced"}
    after = {"a": "Synced", "b": "OutOfSync", "c": "OutOfSync"}
    assert argocd.sync_changes(before, after) == {"c": ("Synced", "OutOfSync"), "d": ("Synced", "deleted")}


def test_platform_leaves_out_the_suites_own_applications():
    apps = [argocd.parse(_app("dns")), argocd.parse(_app("pcf-ab12cd34-x", labels={MANAGED_BY_LABEL: MANAGED_BY}))]
    assert [a.name for a in argocd.platform(apps)] == ["dns"]


def test_workload_scaled_to_zero_is_down_and_says_stopped():
    stopped = argocd.Workload("StatefulSet", "argocd-application-controller", "argocd", True, 0, 0)
    assert not stopped.up and "scaled to zero: stopped" in str(stopped)
    assert not argocd.Workload("Deployment", "argocd-repo-server", "argocd", False, 0, 0).up


def test_production_profile_declares_auto_sync_and_a_manual_bootstrap():
    section = profiles.load("production").components.argocd
    assert (section.sync_policy, section.manual_apps, section.app_of_apps) == (
        profiles.SyncPolicy(automated=True, prune=False, self_heal=False), ("bootstrap",), "bootstrap")


def test_claimed_argocd_without_sync_policy_is_refused():
    raw = profiles.yaml.safe_load(profiles.resolve("local").read_text())
    raw["components"]["argocd"].pop("sync_policy")
    with pytest.raises(profiles.ProfileError, match="components.argocd.sync_policy: missing while argocd is claimed"):
        profiles.parse(raw, "local.yaml")


def test_commit_script_quotes_contents():
    text = argocd.config_map("settings", {"colour": "it's blue"})
    assert "colour: \"it's blue\"" in text

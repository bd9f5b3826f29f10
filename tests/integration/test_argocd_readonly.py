"""Argo CD's read-only checks, on production-like Applications seeded on the local cluster's real Argo CD.

Healthy first: the app-of-apps `bootstrap` (manual) declares `dns` and `web` (auto-sync, no
prune, no self-heal), all Synced and Healthy as Argo CD computes them, and every read-only
promise passes as the reader identity. Then broken on purpose: `web`'s source path is removed
from the repository and a `broken` Application whose path never existed is declared; the
synced-and-healthy promise fails by its own check naming both with Argo CD's condition, while
the others still pass (the app-of-apps still agrees, the policies still match).
"""
from __future__ import annotations

import pytest

from conformance.probes import argocd
from tests.integration import argocd_seed
from tests.integration.core_runs import run_suites

try:
    from tests.tiers import needs
except ImportError:  # the tiered stack has not landed: Argo CD is installed by hand
    def needs(component: str):
        return pytest.mark.skipif(False, reason=f"{component} installed")
from tinysuite import derived_profile

pytestmark = [pytest.mark.serial, needs("argocd")]
READ_ONLY = ("argocd/parts/up", "argocd/apps/synced-healthy", "argocd/apps/app-of-apps", "argocd/apps/sync-policy")


def _profile(tmp_path):
    return derived_profile(tmp_path / "profile.yaml", components={"argocd": {"app_of_apps": "bootstrap"}})


def test_read_only_checks_pass_on_healthy_apps_and_name_the_broken_ones(admin_api, tmp_path):
    with argocd_seed.seeded(admin_api) as seed:
        healthy = run_suites(["suites/test_argocd.py"], tmp_path / "healthy", mode="read-only",
                             profile=_profile(tmp_path))
        assert {p: healthy.outcomes(p) for p in READ_ONLY} == {p: {"passed"} for p in READ_ONLY}, healthy.output

        seed.commit({"modules/web/settings.yaml": None,
                     "apps/broken.yaml": argocd_seed.child("broken", seed.url, "modules/missing")},
                    "web loses its path; broken points nowhere")
        seed.sync_bootstrap()
        seed.refresh_all()
        seed.wait("web and broken to report their missing paths",
                  lambda apps: {a.name for a in apps if any("path does not exist" in m for _, m in a.conditions)}
                  >= {"web", "broken"})
        broken = run_suites(["suites/test_argocd.py"], tmp_path / "broken", mode="read-only",
                            profile=_profile(tmp_path))
    assert broken.exit_code == 1, broken.output
    for name in ("web", "broken"):
        assert broken.failed_by_its_check("argocd/apps/synced-healthy", f"Application argocd/{name}: ") == {}, \
            broken.output
    failed = broken.failures("argocd/apps/synced-healthy")[0]
    for path in ("modules/missing", "modules/web"):
        assert f"{path}: app path does not exist" in failed["reason"] + failed["diagnosis"], failed
    others = [p for p in READ_ONLY if p != "argocd/apps/synced-healthy"]
    assert {p: broken.outcomes(p) for p in others} == {p: {"passed"} for p in others}, broken.output

"""The coexistence promise: a full run leaves Applications it did not create as Synced as it found them.

Seeded outside Applications: an app-of-apps `bootstrap` managing `dns` and `web`, which are
Applications in Argo CD's namespace, where the write allowlist lets a run write Applications
(its own). A full run of the Argo CD suite must leave all of them Synced. Then a tiny suite that
changes `web`'s spec on purpose (as the allowlist lets it), run with the real coexistence test,
must fail it by its own check, naming `bootstrap`, whose declared child no longer matches git.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cluster import paths
from tests.integration import argocd_seed
from tests.integration.core_runs import ROOT, run_suites
from tests.integration.test_core_breakage import held  # noqa: F401 - the full-run lease fixture
from tinysuite import ALL_PLUGINS, project, run as run_tiny

try:
    from tests.tiers import needs
except ImportError:  # the tiered stack has not landed: Argo CD is installed by hand
    def needs(component: str):
        return pytest.mark.skipif(False, reason=f"{component} installed")

pytestmark = [pytest.mark.serial, needs("argocd")]
PROMISE = "argocd/coexistence/outside-in-sync"

DELIBERATE = f'''
import pytest
from kubernetes.dynamic import DynamicClient


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/test/changes-outside-object")
def test_changes_an_object_an_outside_application_manages(kube):
    """The run MUST change the Application web, which bootstrap manages (on purpose, as the allowlist lets it)."""
    apps = DynamicClient(kube).resources.get(api_version="argoproj.io/v1alpha1", kind="Application")
    apps.patch(name="web", namespace="argocd", content_type="application/merge-patch+json",
               body={{"spec": {{"source": {{"targetRevision": "main"}}}}}})
'''


def test_full_run_keeps_outside_apps_synced_and_a_deliberate_change_is_caught(admin_api, held, tmp_path):  # noqa: F811
    """Both runs carry the held lease's run id, so no other full run comes between the seed and them."""
    with argocd_seed.seeded(admin_api):
        clean = run_suites(["suites/test_argocd.py"], tmp_path / "clean", extra=(f"--run-id={held.run.run_id}",))
        held.acquire()  # the run released the lease it shared
        assert clean.outcomes(PROMISE) == {"passed"}, clean.output
        assert clean.exit_code == 0, clean.output

        root = project(tmp_path / "tiny", {
            "suites/test_argocd.py": (ROOT / "suites" / "test_argocd.py").read_text(),
            "suites/test_deliberate.py": DELIBERATE,
        }, plugins=(*ALL_PLUGINS, "fixtures.argocd"))
        reports = tmp_path / "tiny-reports"
        done = run_tiny(root, "--profile=local", "--mode=full", f"--kubeconfig={paths.kubeconfig('runner')}",
                        f"--reports={reports}", f"--run-id={held.run.run_id}", "-q", "-k",
                        "outside_applications_in_sync or changes_an_object", timeout=300)
        held.acquire()
    summary = _promises(reports)
    assert summary.get("argocd/test/changes-outside-object") == "passed", done.stdout[-4000:]
    assert summary.get(PROMISE) == "failed", done.stdout[-4000:]
    assert "'bootstrap': ('Synced', 'OutOfSync')" in done.stdout, done.stdout[-4000:]


def _promises(reports: Path) -> dict[str, str]:
    import json

    return {r["promise"]: r["outcome"] for r in json.loads((reports / "summary.json").read_text())["promises"]}

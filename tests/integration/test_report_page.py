"""The HTML report, opened in headless Chromium, shows components, promise ids and the
diagnosis attached to a failing test.

The failure is real: the profile claims three DNS replicas, the local cluster runs one, and a
read-only run of the DNS suite reports it. The page is judged by what a browser renders.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import report
from conformance.cluster import paths

FAILING = "dns/server/replicas-match-profile"
PASSING = "dns/server/service-matches-profile"
SCREENSHOTS = paths.REPO / "reports"  # artefacts: one PNG per page opened
RUN_S, BROWSER_S = 300, 120


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed; `nox -s tests` installs it")
    out = tmp_path_factory.mktemp("report")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--profile=local", "--mode=read-only",
         "--set", "components.dns.replicas=3", "-m", "dns", f"--alluredir={out / 'results'}",
         f"--reports={out / 'reports'}", "-p", "no:cacheprovider", "-q"],
        cwd=paths.REPO, capture_output=True, text=True, timeout=RUN_S, check=False)
    assert run.returncode == 1, f"the DNS suite should fail on the replica count:\n{run.stdout[-3000:]}"
    index = report.render(out / "results", out / "html")
    results = json.loads((out / "html" / "test-results.json").read_text())["byId"]
    return index, results


def _page(index: Path, test_id: str, shot: str, *attachments: str) -> dict:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(Path(__file__).with_name("report_page.mjs")), str(report.npm_package("playwright-core", "1").parent),
         f"{index.as_uri()}#{test_id}", str(SCREENSHOTS / shot), *attachments],
        capture_output=True, text=True, timeout=BROWSER_S, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_failing_test_page_shows_component_promise_and_diagnosis(rendered):
    index, results = rendered
    failed = [tid for tid, r in results.items() if r["status"] == "failed"]
    assert len(failed) == 1, f"expected exactly the replica promise to fail: {results}"
    page = _page(index, failed[0], "report-failing-test.png", "diagnosis")
    text = page["text"]
    assert "component\ndns" in text or "component dns" in text, text[:2000]
    assert f"promise\n{FAILING}" in text or f"promise {FAILING}" in text, text[:2000]
    # The attachment's own content, shown once it is opened in the browser.
    assert "diagnosis of suites/test_dns.py::test_dns_deployment_runs_the_replicas_the_profile_names" in text
    assert "Deployment kube-system/coredns: 1 of 1 replicas ready; the profile names 3" in text
    assert page["outside"] == [], f"the report reached outside: {page['outside']}"
    assert (SCREENSHOTS / "report-failing-test.png").stat().st_size > 0


def test_passing_test_page_shows_its_promise(rendered):
    index, results = rendered
    passed = [tid for tid, r in results.items() if r["status"] == "passed"]
    assert passed, results
    texts = [_page(index, tid, f"report-passing-{i}.png")["text"] for i, tid in enumerate(passed)]
    assert any(PASSING in t for t in texts), "no passing page shows " + PASSING


def test_overview_lists_every_claim_with_its_state(rendered):
    """The claims table reaches the report: its overview names the verdict and each claim with
    its state, so a reader of the HTML alone sees what the run did not check."""
    index, _ = rendered
    text = _page(index, "", "report-overview.png", "Show more")["text"]  # the run's facts, unfolded
    assert "verdict\nfail (exit 1)" in text, text[:3000]
    for claim in ("control_plane", "runtime", "networking", "dns"):
        assert f"claim {claim}\n" in text, f"the overview does not list claim {claim}:\n{text[:3000]}"
    assert "claim dns\nfailed: 2 ran, 1 passed, 1 failed" in text, text[:3000]

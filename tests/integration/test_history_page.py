"""The history page, opened in headless Chromium from a seeded history of ten nightly runs: every
measured series is there with its budget, and the regression seeded into the last run is flagged
in the table and drawn in red."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conformance import history

CHROMIUM_S = 60


def seed(folder):
    """Ten runs: DNS p95 steady near 1 ms then 2.5 ms in the last (a regression by the median
    rule), LoadBalancer address time steady under its 30 s budget."""
    folder.mkdir()
    dns = [1.0, 1.1, 0.9, 1.0, 1.2, 1.0, 1.1, 0.9, 1.0, 2.5]
    for day, value in enumerate(dns):
        doc = {"run": {"run_id": f"night{day}", "started": f"2026-11-{day + 10:02d}T02:00:00+00:00"},
               "verdict": {"word": "pass"},
               "promises": [
                   {"promise": "dns/latency/p95-within-budget", "outcome": "passed", "measurements": [
                       {"name": "dns_p95", "value": value, "unit": "ms", "budget": 50}]},
                   {"promise": "loadbalancer/address/assigned", "outcome": "passed", "measurements": [
                       {"name": "address_s", "value": 2.0 + day / 10, "unit": "s", "budget": 30}]}]}
        (folder / f"{day:02d}.json").write_text(json.dumps(doc))
    return folder


def dom(page) -> str:
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed; `nox -s tests` installs it")
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={page.parent / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=CHROMIUM_S, check=True)
    return proc.stdout


def test_the_history_page_plots_each_series_beside_its_budget_and_flags_the_regression(tmp_path):
    page = history.render(seed(tmp_path / "history"), tmp_path / "history.html")
    shown = dom(page)
    assert 'data-series="dns/latency/p95-within-budget · dns_p95"' in shown
    assert 'data-series="loadbalancer/address/assigned · address_s"' in shown
    assert "budget 50 ms" in shown and "budget 30 s" in shown
    assert "10 runs, 2 measured series" in shown
    regressions = shown.split('id="regressions"')[1].split("</table>")[0]
    assert regressions.count('class="regression"') == 1, regressions
    assert "night9" in regressions and "dns_p95" in regressions
    assert "2.5 ms is worse than 1.5 times the median (1 ms) of the 7 runs before it" in regressions
    assert "the latest run has a regression" in shown
    assert shown.count('fill="#d32f2f"') == 1   # the one flagged point drawn in red

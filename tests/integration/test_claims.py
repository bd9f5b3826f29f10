"""Claims on the real local cluster: a claim nothing checks makes the run incomplete, and the
local profile claims nothing it cannot check.

The core suites run as a user runs them, in a subprocess, and are judged by their exit code,
the verdict line on the terminal and reports/summary.json.
"""
from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from conformance.waiting import wait_for
from tinysuite import derived_profile, project

from core_runs import ROOT, run_suites

CORE_COMPONENTS = ("control_plane", "runtime", "networking", "dns", "cilium")
CORE_SUITES = ("test_control_plane.py", "test_runtime.py", "test_dns.py", "test_networking.py", "test_cilium.py")

METALLB = {"claimed": True, "namespace": "metallb-system", "pools": ["default-pool"]}


def summary(reports):
    return json.loads((reports / "summary.json").read_text())


def core_only_project(root: Path) -> Path:
    """The suite's own plugins with only the core suites, as if no suite checked MetalLB yet."""
    plugins = runpy.run_path(str(ROOT / "conftest.py"))["pytest_plugins"]
    return project(root, {f"suites/{name}": (ROOT / "suites" / name).read_text()
                          for name in CORE_SUITES}, plugins=tuple(plugins))


def test_a_claimed_component_no_suite_covers_ends_incomplete(tmp_path):
    from conformance import profile as profiles

    add_ons = {name: {"claimed": False} for name in profiles.load("local").claimed if name not in CORE_COMPONENTS}
    profile = derived_profile(tmp_path / "with-metallb.yaml", components={**add_ons, "metallb": METALLB})
    reports = tmp_path / "reports"
    done = run_suites(["suites"], reports, mode="read-only", profile=profile, cwd=core_only_project(tmp_path / "p"))
    doc = summary(reports)
    assert done.exit_code == 3, done.output
    assert (doc["verdict"]["word"], doc["verdict"]["exit_code"]) == ("incomplete", 3)
    assert "unchecked, no promise of theirs ran: metallb, metallb/pool:default-pool" in doc["verdict"]["reason"]
    claims = {c["id"]: c for c in doc["claims"]}
    assert claims["metallb"]["state"] == "unchecked" and claims["metallb"]["promises"]["ran"] == 0
    assert claims["metallb"]["why"] == "no promise covers it: no suite checks it yet"
    assert {claims[c]["state"] for c in ("control_plane", "runtime", "dns")} == {"passed"}
    assert "verdict: incomplete (exit 3): 2 claim(s) unchecked" in done.output
    assert "metallb (components.metallb.claimed): no promise covers it" in done.output


def test_a_local_read_only_run_passes_narrowed_with_nothing_unchecked(tmp_path):
    reports = tmp_path / "reports"
    done = run_suites(["suites"], reports, mode="read-only")
    doc = summary(reports)
    assert done.exit_code == 0, done.output
    states = {c["id"]: c["state"] for c in doc["claims"]}
    assert "unchecked" not in states.values(), states
    assert states["networking"] == "not-selected"  # every networking promise writes
    assert doc["narrowed"]["by"] == ["read-only run (--mode=read-only selects no promise that writes)"]


@pytest.mark.timeout(1800)  # a shared cluster: other full runs may hold the lease for a while
def test_every_capability_the_local_profile_claims_is_checked(tmp_path, free_lease):
    """The local profile claims only what the local stack runs: with the read-only run above
    (its components), a full run of every test that covers a capability (`-k covers` matches
    the marker) checks each capability local claims, and none of them skips."""
    reports = tmp_path / "reports"

    def attempt():
        done = run_suites(["suites"], reports, mode="full", keyword="covers")
        return done, summary(reports)

    # the cluster is shared: another full run may take the lease between free_lease and this run
    done, doc = wait_for("a full run that gets the lease", attempt, timeout=600, interval=5, retry_on=(),
                         until=lambda run: "holds the lease" not in run[1]["verdict"]["reason"])
    states = {c["id"]: c["state"] for c in doc["claims"]}
    capabilities = {c["id"] for c in doc["claims"] if c["kind"] != "component"}
    assert {"cluster/dual-stack", "networking/nodeports-from-outside", "dns/upstream-forwarder"} <= capabilities, (
        doc["verdict"], done.output)
    assert {c: states[c] for c in capabilities | {"networking"} if states[c] != "passed"} == {}, done.output
    assert "unchecked" not in states.values() and done.exit_code == 0, done.output
    assert doc["narrowed"]["by"] == ["-k 'covers'"]

"""Running the core suites as a user would, in a subprocess, and reading their JSON summary.

The integration tests judge the suites by what a user gets: the exit code, and for each promise
the outcome, the first line of the failure and the diagnosis in reports/summary.json. A promise
fails only by its own check (outcome `failed`, from the test's body); `error` (setup gave up)
never counts as the promise failing.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


from conformance.cluster import paths
from tiers import installed_profile

ROOT = Path(__file__).resolve().parents[2]
RUN_LIMIT_S = 600  # a suite run that takes longer than this hangs; the test fails instead of waiting


@dataclass(frozen=True)
class SuiteRun:
    exit_code: int
    wall_s: float
    promises: dict[str, list[dict]]  # promise id -> its results (one per parametrised node)
    output: str

    def outcomes(self, promise: str) -> set[str]:
        return {r["outcome"] for r in self.promises.get(promise, [])}

    def failures(self, promise: str) -> list[dict]:
        """The promise's results that failed in the test's body. A promise that errored in setup
        (a fixture that gave up) never reached its own check, so that is not a failure of it."""
        return [r for r in self.promises.get(promise, []) if r["outcome"] == "failed"]

    def failed_by_its_check(self, promise: str, cause: str) -> dict[str, str]:
        """What is wrong with "`promise` failed by its own check, naming `cause`", by node id:
        empty when every result of the promise failed in its body on an assertion or a wait
        (WaitTimeout is an AssertionError), with `cause` in its diagnosis."""
        results = self.promises.get(promise, [])
        if not results:
            return {promise: "did not run"}
        wrong = {}
        for r in results:
            # pytest names the exception first, except for a bare `assert` (its text comes alone).
            reason = r["reason"] or ""
            raised = "AssertionError" if reason.startswith("assert ") else reason.split(":", 1)[0].rsplit(".", 1)[-1]
            if r["outcome"] != "failed":
                wrong[r["nodeid"]] = f"outcome {r['outcome']} ({r['reason']})"
            elif raised not in ("AssertionError", "WaitTimeout"):
                wrong[r["nodeid"]] = f"failed on {raised}, not on its check: {r['reason']}"
            elif cause not in (r["diagnosis"] or ""):
                wrong[r["nodeid"]] = f"diagnosis does not name {cause!r}:\n{r['diagnosis']}"
        return wrong


def run_suites(tests: list[str], reports: Path, *, mode: str = "full", profile: str | Path = "local",
               keyword: str | None = None, extra: tuple[str, ...] = ()) -> SuiteRun:
    """Run `pytest <tests>` as the identity of `mode` and return what its summary says. The
    shipped local profile stands for what this machine installed of it (tests/tiers.py)."""
    if profile == "local":
        reports.mkdir(parents=True, exist_ok=True)
        profile = installed_profile(reports / "installed-profile.yaml")
    identity = "runner" if mode == "full" else "reader"
    argv = [sys.executable, "-m", "pytest", *tests, f"--profile={profile}",
            f"--mode={mode}", f"--kubeconfig={paths.kubeconfig(identity)}", f"--reports={reports}", "-q",
            "-p", "no:cacheprovider", *extra]
    if keyword:
        argv += ["-k", keyword]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    wall = time.monotonic() - t0
    summary = json.loads((reports / "summary.json").read_text())
    by_promise: dict[str, list[dict]] = {}
    for r in summary["promises"]:
        by_promise.setdefault(r["promise"], []).append(r)
    return SuiteRun(proc.returncode, wall, by_promise, proc.stdout[-20000:] + proc.stderr[-5000:])


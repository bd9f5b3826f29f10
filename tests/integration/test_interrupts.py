"""Ctrl-C at any moment of a real suite run stops it: exit 2, verdict interrupted, nothing left.

The moments are drawn from a seed the test prints (PCF_INTERRUPT_SEED=<seed> replays them),
spread over the phases of an uninterrupted run of the same selection, measured first: its start
(connect, lease, collection, the shared probe workloads), its tests, and its end (the last
teardown, the run-end cleanup, the verdict). Half the signals go to the pytest process, half to
its process group, as a terminal's Ctrl-C does. Each run is judged from the cluster with the
admin identity, not from what the run says about itself.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance import waiting
from conformance.cluster import paths
from run_leftovers import lease_holder, left_by, new_id, wait_for_free_lease
from tests.integration.core_runs import ROOT

# A short selection: the shared probe workloads, lookups by exec, a test with its own namespace.
SELECTION = ("suites/test_dns.py", "suites/test_networking.py", "-k",
             "service_fqdn or missing_name_is_nxdomain or same_node or default_deny_ingress")
PHASES = {"start": 3, "tests": 4, "end": 3}  # trials per phase: at least 10 in all
# A stopped run owes its teardown and cleanup, each namespace bounded by namespace_deleted.
STOP_LIMIT_S = waiting.limit("namespace_deleted") + 60
RESULT = re.compile(r" (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


@dataclass
class Run:
    """A suite run in its own process group, its output lines timed as they come."""

    proc: subprocess.Popen
    reports: Path
    run_id: str
    started: float = field(default_factory=time.monotonic)
    ready: float | None = None  # when its stop handlers were in place
    ended: float | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def finish(self, limit_s: float) -> None:
        """Wait for the run to end, and note when it did."""
        try:
            self.proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"run {self.run_id} did not end within {limit_s:.0f} s:\n{self.output[-4000:]}")
        self.ended = time.monotonic()
        self._reader.join(timeout=10)

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def verdict(self) -> dict:
        return json.loads((self.reports / "summary.json").read_text())["verdict"]


def catches(pid: int, signum: int) -> bool:
    """Whether the process has its own handler for the signal (the run installs one for SIGTERM
    once its plugins are configured; Python has none by default)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def start(tmp: Path) -> Run:
    """Start a run of the selection; returns once its stop handlers are in place."""
    run_id = new_id()
    reports = tmp / run_id
    argv = [sys.executable, "-m", "pytest", *SELECTION, "--profile=local", "--mode=full",
            f"--kubeconfig={paths.kubeconfig('runner')}", f"--reports={reports}", f"--run-id={run_id}",
            "-v", "-p", "no:cacheprovider"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal starts it
    run = Run(proc, reports, run_id)
    waiting.wait_for(f"run {run_id} to install its stop handlers",
                     lambda: catches(proc.pid, signal.SIGTERM) or proc.poll() is not None, timeout=60, interval=0.02)
    run.ready = time.monotonic()
    return run


def lost_the_race(run: Run) -> bool:
    """Another full run took the lease between our wait for it and our (ended) run's start."""
    return run.proc.returncode == 2 and "holds the lease" in run.output


def interrupted_run(tmp: Path, admin_api, offset: float, to_group: bool) -> tuple[Run, float | None]:
    """A run of the selection sent SIGINT `offset` s after its handlers were in place (started
    again when another full run took the lease first); returns it ended, and when the signal
    went (None when the run had ended before)."""
    misses = 0
    while True:
        wait_for_free_lease(admin_api)
        run = start(tmp)
        time.sleep(max(0.0, run.ready + offset - time.monotonic()))
        sent = sent_at = None
        if run.proc.poll() is None:
            sent, sent_at = time.monotonic(), time.time()
            (os.killpg if to_group else os.kill)(run.proc.pid, signal.SIGINT)
        run.finish(STOP_LIMIT_S)
        if lost_the_race(run):
            continue
        if sent is not None and decided_before(run, sent_at):
            sent = None  # the verdict was written before the signal: the run had ended its work
        if sent is None and misses < 3:  # this run was quicker than the measured one: a bit earlier
            misses, offset = misses + 1, offset * 0.9
            continue
        return run, sent


def decided_before(run: Run, moment: float) -> bool:
    """Whether the run wrote its final summary (its verdict) before `moment` (wall clock): a
    Ctrl-C after that finds a run whose work is done and whose verdict stands."""
    summary = run.reports / "summary.json"
    return summary.exists() and summary.stat().st_mtime < moment


def phases(run: Run) -> dict[str, tuple[float, float]]:
    """Where each phase of an uninterrupted run lies, in seconds after its handlers were in place."""
    results = [t - run.ready for t, line in run.lines if RESULT.search(line)]
    assert results, f"the selection ran no test:\n{run.output[-4000:]}"
    return {"start": (0.0, results[0]), "tests": (results[0], results[-1]), "end": (results[-1], run.ended - run.ready)}


def test_ctrl_c_at_any_moment_stops_the_run_and_leaves_nothing(tmp_path, admin_api, free_lease):
    seed = int(os.environ.get("PCF_INTERRUPT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"interrupt offsets drawn from PCF_INTERRUPT_SEED={seed}")
    while True:
        baseline = start(tmp_path)
        baseline.finish(STOP_LIMIT_S * 2)
        if not lost_the_race(baseline):
            break
        wait_for_free_lease(admin_api)
    spans = phases(baseline)
    assert baseline.proc.returncode in (0, 1), baseline.output[-4000:]  # the selection itself runs
    assert left_by(admin_api, baseline.run_id) == []
    print("phases of an uninterrupted run (s):", {k: f"{a:.1f}-{b:.1f}" for k, (a, b) in spans.items()})

    rng = random.Random(seed)
    # The end phase is short and a late signal could miss it: keep offsets inside its first 90%.
    plan = [(phase, rng.uniform(a, a + (b - a) * (0.9 if phase == "end" else 1.0)))
            for phase, count in PHASES.items() for a, b in [spans[phase]] for _ in range(count)]
    problems = []
    for i, (phase, offset) in enumerate(plan):
        to_group = i % 2 == 0
        run, sent = interrupted_run(tmp_path, admin_api, offset, to_group)
        if sent is None:
            problems.append(f"trial {i} ({phase}, {offset:.1f} s): the run ended before the signal, "
                            f"exit {run.proc.returncode}")
            continue
        trial = (f"trial {i} ({phase}, SIGINT at {offset:.1f} s to the {'group' if to_group else 'process'}, "
                 f"run {run.run_id}, ended {run.ended - sent:.1f} s later)")
        print(trial)
        found = []
        if run.proc.returncode != 2:
            found.append(f"exit {run.proc.returncode}")
        verdict = run.verdict() if (run.reports / "summary.json").exists() else {"word": "no summary.json"}
        if verdict["word"] != "interrupted":
            found.append(f"verdict {verdict}")
        left = left_by(admin_api, run.run_id)
        if left:
            found.append(f"left {left}")
        if lease_holder(admin_api) == run.run_id:
            found.append("lease still held")
        if found:
            problems.append(f"{trial}: {'; '.join(found)}\n{run.output[-3000:]}")
    assert problems == [], f"replay with PCF_INTERRUPT_SEED={seed}\n" + "\n\n".join(problems)

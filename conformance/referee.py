"""Kubernetes' own e2e suite as a referee: upstream's [Conformance] specs for the core components
the profile claims, judged into the same reports as the suites.

`e2e.test` is built from the pinned k8s.io/kubernetes module (manifests/stack.yaml, program
`kubernetes-e2e`), run against any cluster whose profile allows it (`policy.allow_upstream_e2e`:
upstream's specs make namespaces, RBAC and workloads of their own), under the full run's lease,
and its JUnit report becomes one promise per spec (component `kubernetes-e2e`, the spec text as
the MUST sentence) in <reports>/kubernetes-e2e/summary.json and the Allure results. Where the
suite's own promises and upstream's disagree about the same cluster, one of them is wrong.

    python -m conformance.referee --profile local [--kubeconfig ...] [--context ...]
        [--focus REGEX ...] [--prepare-local] [--reports DIR]

Exit codes as the suites': 0 every spec passed, 1 a spec failed, 2 could not run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from conformance import InputError, kube, profile as profiles, run as runs, summary
from conformance.guard import WriteGuard
from conformance.summary import PromiseResult

COMPONENT = "kubernetes-e2e"
PROGRAM = "kubernetes-e2e"
TIER = "upstream-e2e"
# Upstream's conformance specs that stand for each claimed core component, as ginkgo focus
# regular expressions on the full spec text. Upstream has no NetworkPolicy conformance spec.
FOCUS = {
    "dns": (r"\[sig-network\] DNS .*\[Conformance\]",),
    "networking": (r"\[sig-network\] Services .*\[Conformance\]", r"\[sig-network\] NetworkPolicy.*\[Conformance\]"),
    "runtime": (r"\[sig-node\] Pods .*\[Conformance\]",),
}
SKIP = r"\[Disruptive\]"
# Labels the framework puts on every namespace it makes (test/e2e/framework/framework.go, util.go).
NAMESPACE_LABELS = ("e2e-framework", "e2e-run")
# What the e2e process may take: ginkgo's own limit is set below this, so a stuck spec is
# reported by ginkgo (with its progress report) rather than killed from here.
GINKGO_TIMEOUT = "3h"
PROCESS_TIMEOUT_S = 3 * 3600 + 600
INTERRUPT_GRACE_S = 300   # after SIGINT ginkgo runs its cleanups (deleting its namespaces)
EVERY_S = 15.0
SPEC_DONE = re.compile(r"^(•|S) ?(\[(?P<state>[A-Z]+)\])?")
OUTCOMES = {"passed": "passed", "failed": "failed", "panicked": "error", "interrupted": "error",
            "timedout": "error", "aborted": "error", "skipped": "skipped", "pending": "skipped"}


def focus_for(profile: profiles.Profile) -> list[str]:
    """The focus regexes for the core components the profile claims."""
    return [regex for component, regexes in FOCUS.items() if profile.claims(component) for regex in regexes]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def promise_id(spec: str) -> str:
    """`kubernetes-e2e/<sig>/<the spec's words>`, from the spec text (tags like [Conformance] dropped)."""
    sig = re.match(r"^\[(sig-[a-z-]+)\]\s*", spec)
    words = re.sub(r"\[[^\]]*\]", " ", spec[sig.end():] if sig else spec)
    return f"{COMPONENT}/{sig.group(1) if sig else 'e2e'}/{slug(words)[:120].rstrip('-')}"


@dataclass(frozen=True)
class SpecResult:
    """One spec of e2e's JUnit report."""

    text: str
    state: str
    seconds: float
    message: str = ""
    detail: str = ""

    def promise(self) -> PromiseResult:
        outcome = OUTCOMES.get(self.state, "error")
        first = self.message.strip().splitlines()[0] if self.message.strip() else None
        return PromiseResult(nodeid=self.text, component=COMPONENT, promise=promise_id(self.text),
                             must=self.text, outcome=outcome, duration_s=self.seconds,
                             reason=first if outcome != "passed" else None,
                             diagnosis=self.detail[-20000:] or None if outcome in ("failed", "error") else None)


def parse_junit(path: Path, focus: list[str]) -> tuple[list[SpecResult], str | None]:
    """The focused specs of e2e's JUnit report, and why the suite could not run (a failed
    BeforeSuite), if it could not. Specs left out by the focus are listed too: dropped."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(f"e2e wrote no readable JUnit report at {path}: {exc}. Fix: see its log beside it") from None
    wanted = [re.compile(f) for f in focus]
    specs, broken = [], None
    for case in root.iter("testcase"):
        name = case.get("name", "")
        state = case.get("status") or ("failed" if case.find("failure") is not None else "passed")
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        message = (problem.get("message") or "") if problem is not None else ""
        detail = (problem.text or "") if problem is not None else ""
        if name.startswith("[SynchronizedBeforeSuite]") or name.startswith("[BeforeSuite]"):
            if state not in ("passed", "skipped"):
                broken = f"upstream's e2e setup failed before any spec ran: {message.strip() or detail[-500:]}"
            continue
        if not name.startswith("[It] "):
            continue
        text = name[len("[It] "):]
        if not any(r.search(text) for r in wanted):
            continue
        if state == "skipped":
            skipped = case.find("skipped")
            message = skipped.get("message", "") if skipped is not None else message
        specs.append(SpecResult(text, state, float(case.get("time") or 0), message, detail))
    return specs, broken


class Progress:
    """Counts spec ends in ginkgo's verbose output and says where the run is every 15 s."""

    def __init__(self, expected: int, log: Callable[[str], None]):
        self.expected, self.log = expected, log
        self.started = time.monotonic()
        self.done = self.failed = 0
        self.current = ""
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        text = line.rstrip()
        with self._lock:
            if text.startswith("[sig-") or text.startswith("[It] [sig-"):
                self.current = text.removeprefix("[It] ")
            match = SPEC_DONE.match(text)
            if match and text[:1] == "•":
                self.done += 1
                if match.group("state") in ("FAILED", "PANICKED", "TIMEDOUT", "INTERRUPTED"):
                    self.failed += 1
                    self.log(f"upstream e2e: FAILED {self.current}")

    def line(self) -> str:
        with self._lock:
            elapsed = int(time.monotonic() - self.started)
            return (f"upstream e2e: {self.done}/{self.expected} specs done, {self.failed} failed, "
                    f"{elapsed // 60}m{elapsed % 60:02d}s elapsed; running: {self.current or '(setting up)'}")


def count_focused(e2e: Path, argv: list[str], workdir: Path) -> int:
    """How many specs the focus selects: a ginkgo dry run, which touches no cluster."""
    out = workdir / "dry-run"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(e2e), *argv, "--ginkgo.dry-run", f"--report-dir={out}"], capture_output=True,
                          text=True, timeout=300, check=False)
    found = re.search(r"Ran (\d+) of \d+ Specs", proc.stdout)
    if not found:
        raise InputError(f"{e2e} --ginkgo.dry-run did not list its specs (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout)[-1000:]}. Fix: check the --focus regexes")
    return int(found.group(1))


def run_e2e(e2e: Path, argv: list[str], log_path: Path, progress: Progress, should_stop: threading.Event,
            env: dict[str, str] | None = None) -> int:
    """Run e2e.test in a session of its own, its output to `log_path`; on Ctrl-C, SIGTERM or a lost
    lease it gets SIGINT once (ginkgo then cleans up and writes its report) and a grace period."""
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([str(e2e), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env={**os.environ, **(env or {})})

        def pump() -> None:
            for line in proc.stdout:
                log_file.write(line)
                progress.feed(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        interrupted_at = None
        last = time.monotonic()
        while proc.poll() is None:
            try:
                proc.wait(timeout=1)  # wake every second: to say where it is, and to hear a stop
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - last >= EVERY_S:
                progress.log(progress.line())
                last = time.monotonic()
            if (should_stop.is_set() or time.monotonic() > deadline) and interrupted_at is None:
                progress.log("upstream e2e: stopping (SIGINT to e2e.test; it deletes its namespaces first)")
                proc.send_signal(signal.SIGINT)
                interrupted_at = time.monotonic()
            if interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                progress.log(f"upstream e2e: still running {INTERRUPT_GRACE_S} s after SIGINT; killing it "
                             "(`nox -s sweep` removes its namespaces)")
                proc.kill()
        reader.join(timeout=30)
        return proc.returncode


def repo_list(images: profiles.Images, report_dir: Path) -> dict[str, str]:
    """Behind a mirror, e2e.test reads its registries from KUBE_TEST_REPO_LIST (manifest.go's
    RegistryList): the same prefix before each upstream name, as the suites pull."""
    if not images.registry_prefix:
        return {}
    doc = {key: images.image(registry) for key, registry in (("promoterE2eRegistry", "registry.k8s.io/e2e-test-images"),
                                                             ("gcRegistry", "registry.k8s.io"))}
    path = report_dir / "repo-list.yaml"
    path.write_text(json.dumps(doc) + "\n")   # JSON is YAML
    return {"KUBE_TEST_REPO_LIST": str(path.resolve())}


def e2e_argv(target: kube.Target, focus: list[str], report_dir: Path) -> list[str]:
    argv = [f"--kubeconfig={target.kubeconfig}", "--provider=skeleton", f"--report-dir={report_dir}",
            "--ginkgo.no-color", "--ginkgo.v", f"--ginkgo.timeout={GINKGO_TIMEOUT}", f"--ginkgo.skip={SKIP}",
            # A single-node cluster's node carries the control-plane taint upstream tolerates.
            "--non-blocking-taints=node-role.kubernetes.io/control-plane"]
    if target.context:
        argv.append(f"--context={target.context}")
    return argv + [f"--ginkgo.focus={f}" for f in focus]


def allure_results(specs: list[SpecResult], results_dir: Path, started_ms: int) -> None:
    """One Allure result per spec, labelled like the suites' (feature = component, story = promise)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    at = started_ms
    status = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped"}
    for spec in specs:
        promise = spec.promise()
        stop = at + int(spec.seconds * 1000)
        body = {
            "uuid": str(uuid.uuid4()), "historyId": hashlib.md5(promise.promise.encode()).hexdigest(),
            "name": spec.text, "fullName": f"{COMPONENT}::{spec.text}", "status": status[promise.outcome],
            "stage": "finished", "start": at, "stop": stop, "description": spec.text,
            "statusDetails": {"message": spec.message, "trace": spec.detail[-20000:]} if spec.message else {},
            "labels": [{"name": "feature", "value": COMPONENT}, {"name": "story", "value": promise.promise},
                       {"name": "component", "value": COMPONENT}, {"name": "promise", "value": promise.promise},
                       {"name": "suite", "value": COMPONENT}, {"name": "framework", "value": "ginkgo"}],
        }
        (results_dir / f"{body['uuid']}-result.json").write_text(json.dumps(body))
        at = stop


def prepare_local(log=print) -> None:
    """On the local cluster: build e2e.test and upstream's test images, and load the images."""
    from conformance.cluster import build, host, stack_images

    progs = build.build_all(log=log, tiers=(TIER,))
    host.ensure_packages(log, extra=stack_images.packages(("core", TIER)))
    wanted = [spec for spec in stack_images.specs(("core", TIER)) if spec.get("build", "").startswith("e2e-")]
    archives = [stack_images.build_one(spec, progs) for spec in wanted]
    stack_images.load_all(progs, archives, log=log)


def e2e_binary() -> Path:
    from conformance.cluster import build

    program = build.programs()[PROGRAM]
    if not program.built:
        raise InputError(f"{program.binary('e2e.test')} is not built. Fix: `nox -s upstream-e2e` builds it "
                         "(about 10 min cold), or python -m conformance.referee --prepare-local")
    return program.binary("e2e.test")


def main(argv: list[str] | None = None, log=print) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.referee", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="local", help="profile name or path (default: local)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--focus", action="append", default=[], metavar="REGEX",
                        help="ginkgo focus on the spec text (default: the claimed core components' conformance specs)")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where results go (default: reports)")
    parser.add_argument("--run-id", help="hold the lease as this run (a test that holds it already); default: a new referee id")
    parser.add_argument("--prepare-local", action="store_true",
                        help="first build e2e.test and upstream's test images and load them into the local cluster")
    args = parser.parse_args(argv)
    started = runs.now()
    try:
        profile = profiles.load(args.profile, args.overrides)
        if not profile.policy.allow_upstream_e2e:
            raise InputError(f"profile {profile.name!r} does not allow upstream's e2e (policy.allow_upstream_e2e is "
                             "false): its specs make namespaces, RBAC and workloads beyond a full run's allowlist. "
                             "Fix: run it where the profile allows it (the local profile does)")
        focus = args.focus or focus_for(profile)
        if not focus:
            raise InputError(f"profile {profile.name!r} claims none of {', '.join(FOCUS)}, so no upstream spec "
                             "stands for a claim. Fix: claim a core component, or name specs with --focus")
        target = kube.resolve_target(args.kubeconfig, args.context, None, profile.identities.full, "full")
        if target.impersonate:
            raise InputError(f"{target.describe()}: e2e.test cannot impersonate. Fix: give a kubeconfig whose "
                             "own user may make namespaces and RBAC, with --as ''")
        if args.prepare_local:
            prepare_local(log)
        e2e = e2e_binary()
        report_dir = args.reports / COMPONENT
        report_dir.mkdir(parents=True, exist_ok=True)
        for old in report_dir.glob("junit_*.xml"):
            old.unlink()
        flags = e2e_argv(target, focus, report_dir)
        expected = count_focused(e2e, flags, report_dir)
        identity = runs.RunIdentity(runs.check_run_id(args.run_id) if args.run_id else runs.new_referee_id(), "full")
        api = kube.connect(target, WriteGuard.for_profile("full", [runs.prefix(identity.run_id)],
                                                          profile.write_allowlist))
        kube.check_reachable(api, target)
        lease = runs.RunLease(api, identity)
        lease.acquire()
    except InputError as exc:
        print(f"upstream-e2e: {exc}", file=sys.stderr)
        return summary.COULD_NOT_RUN
    stop = threading.Event()
    lease.start_renewing(on_lost=lambda why: (log(f"upstream e2e: {why}"), stop.set()))
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    log(f"upstream e2e {identity.run_id}: {expected} specs of {e2e} against {target.describe()}; "
        f"focus {' | '.join(focus)}; log {report_dir / 'e2e.log'}")
    t0 = time.monotonic()
    try:
        code = run_e2e(e2e, flags, report_dir / "e2e.log", Progress(expected, log), stop,
                       repo_list(profile.images, report_dir))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lease.release()
    wall = time.monotonic() - t0
    junit = report_dir / "junit_01.xml"
    try:
        specs, broken = parse_junit(junit, focus)
    except InputError as exc:
        specs, broken = [], str(exc)
    if stop.is_set():
        broken = lease.lost or "interrupted (Ctrl-C or SIGTERM): what ran is not all that was selected"
    results = [s.promise() for s in specs]
    outcome = (summary.Verdict.interrupted(broken) if stop.is_set() else
               summary.verdict(results, could_not_run=broken, narrowed_by=[f"--ginkgo.focus={f}" for f in focus]))
    doc = summary.document(results, outcome, narrowed_by=[f"--ginkgo.focus={f}" for f in focus],
                           run_id=identity.run_id, profile=profile.name, profile_source=profile.source, mode="full",
                           started=started.isoformat(), finished=runs.now().isoformat(), wall_s=round(wall, 1),
                           e2e_exit_code=code, e2e_binary=str(e2e), specs_selected=expected)
    summary.write(report_dir / "summary.json", doc)
    allure_results(specs, args.reports / "allure-results", int(started.timestamp() * 1000))
    log(summary.table(results))
    log(f"upstream e2e: {len(specs)} of {expected} specs reported, "
        f"{sum(r.outcome == 'passed' for r in results)} passed, in {wall / 60:.1f} min; "
        f"verdict {outcome.word}: {outcome.reason}; summary {report_dir / 'summary.json'}")
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())

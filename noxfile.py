"""nox owns the environment; pytest observes it.

Sessions bring the local cluster up or down, install the stack, and run the conformance
suites or the project's own tests against an existing cluster.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from conformance.cluster import paths  # noqa: E402  (stdlib only: safe before the venv exists)

nox.options.sessions = ["conformance"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ADMIN = str(paths.kubeconfig("admin"))
# The add-on tiers' integration tests, and about how long each tier's take on the warm cluster.
TIER_TESTS = {"edge": ("test_edge_*.py", "test_tls_*.py"), "secrets": ("test_secrets_*.py",),
              "storage": ("test_storage_*.py",), "gitops": ("test_argocd_*.py",), "upstream-e2e": ("test_e2e_*.py",),
              "kind": ("test_kind_*.py",)}
# Measured on a warm cluster of a 2-core machine with other work beside it (edge 15, secrets 2,
# storage 1.5, gitops 8, upstream-e2e 11.5, kind 6 minutes), with room to spare.
TIER_TESTS_S = {"edge": 20 * 60, "secrets": 4 * 60, "storage": 4 * 60, "gitops": 10 * 60, "upstream-e2e": 14 * 60,
                "kind": 9 * 60}
# Tiers CI runs only when their builds are cached (no stack install builds them): it says when not.
ONLY_WHEN_CACHED = {"upstream-e2e": "nox -s upstream-e2e", "kind": "nox -s cluster -- --provider kind"}
CI_BUDGET_S = 78 * 60   # CI's 90 minutes, less a margin for a slower machine than the one measured
LIFECYCLE_RESERVE_S = 25 * 60   # the lifecycle tests (containerd, the gate, down and up) come last
RUNNER = str(paths.kubeconfig("runner"))


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


# `-- --provider kind`: the same sessions against a multi-node kind cluster (conformance/cluster/kind.py).
KIND_STATE = paths.KIND_STATE


def _provider(session: nox.Session) -> tuple[str, list[str]]:
    """The provider named in the session's arguments (local unless `--provider kind`), and the rest."""
    args, provider = list(session.posargs), "local"
    for i, arg in enumerate(args):
        if arg.startswith("--provider"):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            del args[i:i + (1 if "=" in arg else 2)]
            if value not in ("local", "kind"):
                session.error(f"--provider {value!r} is unknown: use --provider local or --provider kind")
            provider = value
            break
    return provider, args


def _cluster_up(session: nox.Session, *args: str) -> None:
    session.run("python", "-m", "conformance.cluster", "up", *args)


def _stack(session: nox.Session, *args: str, provider: str = "local") -> None:
    if provider == "kind":
        session.run("python", "-m", "conformance.stack", "--provider=kind", "--profile=kind",
                    "--kubeconfig", str(KIND_STATE / "admin.conf"), *args)
    else:
        session.run("python", "-m", "conformance.stack", "--kubeconfig", ADMIN, *args)


@nox.session(name="cluster")
def cluster(session: nox.Session) -> None:
    """Bring up the local cluster (real kube-apiserver, kubelet, CRI-O, ...); idempotent.
    -- --runtime=containerd runs containerd instead of production's CRI-O; -- --provider kind
    brings up a multi-node kind cluster instead."""
    _install(session)
    _cluster_up(session, *session.posargs)


@nox.session(name="cluster-down")
def cluster_down(session: nox.Session) -> None:
    """Stop and remove everything the local cluster started or created; keeps the build cache.
    -- --provider kind deletes the kind cluster instead."""
    _install(session)
    session.run("python", "-m", "conformance.cluster", "down", *session.posargs)


@nox.session(name="stack")
def stack(session: nox.Session) -> None:
    """Install the pinned stack (manifests/stack.yaml) on the local cluster; idempotent.
    -- --tiers=all|cached|core,edge,... [component ...] (default: every tier); --provider kind."""
    _install(session)
    provider, args = _provider(session)
    _stack(session, *args, provider=provider)


@nox.session(name="conformance")
def conformance(session: nox.Session) -> None:
    """Cluster + stack + every conformance suite on the local cluster (the main job);
    -- --provider kind does the same on the kind cluster."""
    _install(session)
    provider, args = _provider(session)
    _cluster_up(session, f"--provider={provider}")
    _stack(session, "--tiers=all", provider=provider)
    profile, runner = ("kind", str(KIND_STATE / "runner.conf")) if provider == "kind" else ("local", RUNNER)
    session.run("pytest", "suites", f"--profile={profile}", f"--kubeconfig={runner}",
                "--junitxml=reports/junit.xml", "--alluredir=reports/allure-results", "--clean-alluredir",
                *args)


@nox.session(name="tests")
def tests(session: nox.Session) -> None:
    """The project's own tests: the local cluster first (so nothing skips for want of a build),
    then unit tests and checks, integration tests, and last the lifecycle tests. The core tier
    always runs, built cold if need be; a heavier tier runs when its builds are cached on this
    machine (`nox -s stack` builds them), and the stack install prints which ran and which not."""
    started = time.monotonic()
    _install(session)
    session.run("python", "-m", "conformance.cluster", "packages", "--test-tools")
    _cluster_up(session)
    _stack(session, f"--tiers={os.environ.get('PCF_TIERS', 'cached')}")
    session.run("pytest", "tests/unit", "-q")
    session.run("python", "-m", "conformance.promises", "--check")
    session.run("lint-imports")
    env = {"PCF_ADMIN_KUBECONFIG": ADMIN}
    tier_files = {tier: sorted(str(f) for pattern in patterns for f in Path("tests/integration").glob(pattern))
                  for tier, patterns in TIER_TESTS.items()}
    ignore = [f"--ignore={f}" for files in tier_files.values() for f in files]
    session.run("pytest", "tests/integration", "-q", "-m", "not lifecycle", *ignore, *session.posargs, env=env)
    # Each add-on tier's integration tests (they skip, naming the tier, when it is not installed),
    # as long as the rest still fits CI's 90 minutes; a tier left out for time is printed.
    for tier, files in tier_files.items():
        left = CI_BUDGET_S - (time.monotonic() - started) - LIFECYCLE_RESERVE_S
        if left < TIER_TESTS_S[tier]:
            session.log(f"tier {tier}: integration tests skipped: {left / 60:.0f} min of CI's budget left, "
                        f"they take about {TIER_TESTS_S[tier] / 60:.0f} (run them: pytest {' '.join(files)})")
            continue
        if tier in ONLY_WHEN_CACHED and (missing := _not_cached(session, tier)):
            session.log(f"tier {tier}: integration tests skipped: not built on this machine ({missing}); "
                        f"`{ONLY_WHEN_CACHED[tier]}` builds it")
            continue
        session.run("pytest", *files, "-q", "-m", "not lifecycle", *session.posargs, env=env)
    # Last: these take the shared cluster down and bring it back.
    session.run("pytest", "tests/integration", "-q", "-m", "lifecycle", *session.posargs, env=env)


def _not_cached(session: nox.Session, tier: str) -> str:
    return session.run("python", "-c", "import sys; from conformance.cluster import tiers; "
                       "print(', '.join(tiers.missing(sys.argv[1])))", tier, silent=True).strip()


@nox.session(name="upstream-e2e")
def upstream_e2e(session: nox.Session) -> None:
    """Kubernetes' own e2e as a referee: build e2e.test and upstream's test images (cached after), load
    them, run upstream's [Conformance] specs for the claimed core components on the local cluster;
    results under reports/ as component kubernetes-e2e. -- --focus REGEX narrows; -- --profile=P
    --kubeconfig=K runs against another cluster whose profile allows it."""
    _install(session)
    local = [] if any(a.startswith("--profile") for a in session.posargs) else [
        "--profile=local", f"--kubeconfig={ADMIN}", "--prepare-local"]
    session.run("python", "-m", "conformance.referee", *local, *session.posargs)


@nox.session(name="publish-images")
def publish_images(session: nox.Session) -> None:
    """Push the images the suite's workloads pull (the probe image, built here, and the rest) to a
    registry: -- --registry=HOST[:PORT][/PREFIX] [--dest-tls-verify=false] [--authfile=F] [--list-images]."""
    _install(session)
    session.run("python", "-m", "conformance.cluster", "publish", *session.posargs)


def _gate(session: nox.Session, step: str) -> None:
    _install(session)
    session.run("python", "-m", "conformance.gate", step, *session.posargs)


@nox.session(name="gate-before")
def gate_before(session: nox.Session) -> None:
    """Upgrade gate, before: run the suites, snapshot the platform, write sentinels
    (-- --dir gate --profile P --kubeconfig K [-- pytest args])."""
    _gate(session, "before")


@nox.session(name="gate-after")
def gate_after(session: nox.Session) -> None:
    """Upgrade gate, after: check the sentinels, run the suites, diff snapshots and promises,
    one verdict (-- --dir gate [--expect changes.yaml] [-- pytest args])."""
    _gate(session, "after")


@nox.session(name="gate-clean")
def gate_clean(session: nox.Session) -> None:
    """Remove an open gate's sentinels (-- --dir gate)."""
    _gate(session, "clean")


@nox.session(name="sweep")
def sweep(session: nox.Session) -> None:
    """Remove what dead runs left behind (stale or missing lease, or past expiry)."""
    _install(session)
    args = session.posargs or ["--profile=local", f"--kubeconfig={ADMIN}"]
    session.run("python", "-m", "conformance.sweep", *args)


@nox.session(name="promises")
def promises(session: nox.Session) -> None:
    """Regenerate suites/PROMISES.md from the suites' promise markers and docstrings."""
    _install(session)
    session.run("python", "-m", "conformance.promises")


@nox.session(name="report")
def report(session: nox.Session) -> None:
    """Render reports/allure-results as one HTML file that opens from disk (Allure 3, offline);
    -- --history DIR renders the history page of the runs kept there instead."""
    _install(session)
    if session.posargs[:1] == ["--history"]:
        session.run("python", "-m", "conformance.history", *session.posargs[1:])
    else:
        session.run("python", "-m", "conformance.report", *session.posargs)


@nox.session(name="bench")
def bench(session: nox.Session) -> None:
    """Benchmarks of the harness and the suite; they print numbers, they assert nothing."""
    _install(session)
    session.run("python", "benchmarks/cluster_bringup.py", *session.posargs)

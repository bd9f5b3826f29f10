"""Argo CD: Applications as Argo CD itself judges them, its controller and repo server, a git repo.

Every state here is the one Argo CD computed and wrote into the Application's status (sync
status, health, conditions, out-of-sync resources, the children an app-of-apps manages); the
probe only reads it, so a promise holds exactly when Argo CD says it does. Workload facts (the
repo server's Deployment, the controller's StatefulSet) come with every Application reading, so
a wait that gives up because the controller is down says so. The git server is the suite's own
(git daemon in the run's namespace); commits are made inside its pod, so the runner needs no
route to the cluster network.
"""
from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass
from typing import Iterable, Mapping

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from conformance import pods
from conformance.run import MANAGED_BY, MANAGED_BY_LABEL

GROUP, VERSION = "argoproj.io", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
REPO_SERVER = ("Deployment", "argocd-repo-server")
CONTROLLER = ("StatefulSet", "argocd-application-controller")
GIT_PORT = 9418
GIT_ROOT = "/srv/git"
GIT_SELECTOR = "app.kubernetes.io/name=pcf-git"
REQUEST_TIMEOUT = (5, 30)


@dataclass(frozen=True)
class Policy:
    """An Application's sync policy as `spec.syncPolicy` declares it."""

    automated: bool
    prune: bool
    self_heal: bool

    def __str__(self) -> str:
        if not self.automated:
            return "manual"
        return f"automated (prune={str(self.prune).lower()}, selfHeal={str(self.self_heal).lower()})"


@dataclass(frozen=True)
class Resource:
    """One object an Application manages, with Argo CD's verdict on it."""

    kind: str
    namespace: str
    name: str
    status: str  # Synced, OutOfSync, Unknown
    health: str  # Healthy, Progressing, Missing, ... or "" for kinds without health

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.status}{', ' + self.health if self.health else ''})"


@dataclass(frozen=True)
class App:
    """One Application as Argo CD last wrote it."""

    name: str
    namespace: str
    sync: str  # Synced, OutOfSync, Unknown ("" before the first comparison)
    health: str  # Healthy, Progressing, Degraded, Suspended, Missing, Unknown
    revision: str
    repo: str
    path: str
    target_revision: str
    destination: str
    policy: Policy
    conditions: tuple[tuple[str, str], ...]  # (type, message)
    resources: tuple[Resource, ...]
    operation: str  # the last sync operation's phase and message, or ""
    reconciled_at: str
    labels: Mapping[str, str]
    deleting: bool

    @property
    def synced_and_healthy(self) -> bool:
        return self.sync == "Synced" and self.health == "Healthy"

    def compared_since(self, moment: dt.datetime) -> bool:
        """True when the controller's last full comparison is at or after `moment` (whole seconds)."""
        if not self.reconciled_at:
            return False
        at = dt.datetime.fromisoformat(self.reconciled_at.replace("Z", "+00:00"))
        return at >= moment.replace(microsecond=0)

    @property
    def out_of_sync(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.status != "Synced")

    @property
    def children(self) -> tuple[str, ...]:
        """Applications this one manages (an app-of-apps' declared children)."""
        return tuple(sorted(r.name for r in self.resources if r.kind == "Application"))

    def resource(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.resources if r.kind == kind and r.name == name), None)

    def __str__(self) -> str:
        lines = [f"Application {self.namespace}/{self.name}: sync={self.sync or '-'} health={self.health or '-'} "
                 f"revision={self.revision[:12] or '-'} policy={self.policy} "
                 f"source={self.repo} path={self.path!r} at {self.target_revision or 'HEAD'}"]
        lines += [f"  condition {t}: {m}" for t, m in self.conditions]
        lines += [f"  out of sync: {r}" for r in self.out_of_sync]
        if self.operation:
            lines.append(f"  last operation: {self.operation}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet of Argo CD: wanted and ready replicas, and its pods' troubles."""

    kind: str
    name: str
    namespace: str
    exists: bool
    replicas: int
    ready: int
    problems: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        return self.exists and self.replicas > 0 and self.ready >= self.replicas

    def __str__(self) -> str:
        if not self.exists:
            return f"{self.kind} {self.namespace}/{self.name} does not exist"
        state = f"{self.kind} {self.namespace}/{self.name}: {self.ready}/{self.replicas} replicas ready"
        if self.replicas == 0:
            state += " (scaled to zero: stopped)"
        return state + "".join(f"; {p}" for p in self.problems)


@dataclass(frozen=True)
class Parts:
    """The Argo CD processes that do the work: the repo server renders, the controller syncs."""

    repo_server: Workload
    controller: Workload

    @property
    def down(self) -> tuple[Workload, ...]:
        return tuple(w for w in (self.repo_server, self.controller) if not w.up)

    def __str__(self) -> str:
        return f"{self.repo_server}\n{self.controller}"


@dataclass(frozen=True)
class Observed:
    """An Application (None when it does not exist) read together with Argo CD's processes."""

    app: App | None
    parts: Parts

    def __str__(self) -> str:
        return f"{self.app or 'no such Application'}\n{self.parts}"


# --- reading ---------------------------------------------------------------------------------

def _resource(dyn: DynamicClient, kind: str = "Application"):
    return dyn.resources.get(api_version=API_VERSION, kind=kind)


def parse(obj: Mapping) -> App:
    """An Application object (as a dict) reduced to what the promises judge."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    source = spec.get("source") or (spec.get("sources") or [{}])[0]
    dest = spec.get("destination") or {}
    auto = (spec.get("syncPolicy") or {}).get("automated")
    policy = Policy(automated=auto is not None and auto.get("enabled", True) is not False,
                    prune=bool((auto or {}).get("prune")), self_heal=bool((auto or {}).get("selfHeal")))
    sync, health = status.get("sync") or {}, status.get("health") or {}
    op = status.get("operationState") or {}
    return App(
        name=meta.get("name", ""), namespace=meta.get("namespace", ""),
        sync=sync.get("status", ""), health=health.get("status", ""), revision=sync.get("revision", "") or "",
        repo=source.get("repoURL", ""), path=source.get("path", ""), target_revision=source.get("targetRevision", ""),
        destination=f"{dest.get('server') or dest.get('name', '')} {dest.get('namespace', '')}".strip(),
        policy=policy,
        conditions=tuple((c.get("type", ""), c.get("message", "")) for c in status.get("conditions") or ()),
        resources=tuple(Resource(r.get("kind", ""), r.get("namespace", ""), r.get("name", ""),
                                 r.get("status", ""), (r.get("health") or {}).get("status", ""))
                        for r in status.get("resources") or ()),
        operation=f"{op.get('phase', '')}: {op.get('message', '')}" if op else "",
        reconciled_at=status.get("reconciledAt", "") or "",
        labels=dict(meta.get("labels") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def applications(api: k8s.ApiClient, namespace: str) -> tuple[App, ...]:
    """Every Application in the namespace, by name."""
    items = _resource(DynamicClient(api)).get(namespace=namespace, _request_timeout=REQUEST_TIMEOUT).to_dict()
    return tuple(sorted((parse(o) for o in items.get("items") or ()), key=lambda a: a.name))


def application(api: k8s.ApiClient, namespace: str, name: str) -> App | None:
    try:
        obj = _resource(DynamicClient(api)).get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
    except NotFoundError:
        return None
    return parse(obj.to_dict())


def workload(api: k8s.ApiClient, namespace: str, kind: str, name: str) -> Workload:
    """A Deployment's or StatefulSet's replicas, and what its pods that are not ready report."""
    apps = k8s.AppsV1Api(api)
    read = apps.read_namespaced_deployment if kind == "Deployment" else apps.read_namespaced_stateful_set
    try:
        obj = read(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return Workload(kind, name, namespace, False, 0, 0)
        raise
    selector = ",".join(f"{k}={v}" for k, v in (obj.spec.selector.match_labels or {}).items())
    problems = []
    for pod in k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector,
                                                       _request_timeout=REQUEST_TIMEOUT).items:
        view = pods.PodView.of(pod)
        if not view.ready:
            problems.append(f"pod {pod.metadata.name} not ready: {view.phase}" + (f" ({view.why})" if view.why else ""))
    return Workload(kind, name, namespace, True, obj.spec.replicas if obj.spec.replicas is not None else 1,
                    obj.status.ready_replicas or 0, tuple(problems))


def parts(api: k8s.ApiClient, namespace: str) -> Parts:
    return Parts(workload(api, namespace, *REPO_SERVER), workload(api, namespace, *CONTROLLER))


def observe(api: k8s.ApiClient, namespace: str, name: str) -> Observed:
    return Observed(application(api, namespace, name), parts(api, namespace))


def platform(apps: Iterable[App]) -> tuple[App, ...]:
    """The platform's Applications: every one the suite did not create (its own carry its managed-by label)."""
    return tuple(a for a in apps if a.labels.get(MANAGED_BY_LABEL) != MANAGED_BY)


@dataclass(frozen=True)
class Cause:
    """What is wrong with Argo CD itself, for a failure's diagnosis: its processes that are
    down, and the Applications whose conditions say why they cannot be compared."""

    parts: Parts | None
    troubled: tuple[App, ...]
    error: str = ""

    def text(self) -> str:
        lines = []
        if self.error:
            lines.append(f"Argo CD could not be read: {self.error}")
        if self.parts is not None:
            lines += [f"Argo CD is down: {w}" for w in self.parts.down] or [f"Argo CD processes up:\n{self.parts}"]
        lines += [str(a) for a in self.troubled]
        return "\n".join(lines)


def likely_cause(api: k8s.ApiClient, namespace: str) -> Cause:
    try:
        found = parts(api, namespace)
        troubled = tuple(a for a in applications(api, namespace) if a.conditions)
    except Exception as exc:  # noqa: BLE001 - a diagnosis says what it could not read
        return Cause(None, (), f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return Cause(found, troubled)


# --- judging ---------------------------------------------------------------------------------

def policy_mismatches(apps: Iterable[App], expected: Policy, manual: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{name: (declared, expected)} for every Application whose sync policy is not the one wanted:
    the names in `manual` must sync by hand, every other the `expected` way."""
    manual = set(manual)
    out = {}
    for app in apps:
        want = Policy(False, False, False) if app.name in manual else expected
        got = app.policy if app.policy.automated else Policy(False, False, False)
        if got != want:
            out[app.name] = (str(got), str(want))
    return out


@dataclass(frozen=True)
class Agreement:
    """How an app-of-apps and the Applications beside it agree."""

    parent: str
    declared: tuple[str, ...]
    missing: tuple[str, ...]  # declared by the parent, not present
    undeclared: tuple[str, ...]  # present, not declared by the parent

    @property
    def agrees(self) -> bool:
        return not self.missing and not self.undeclared


def agreement(parent: App, apps: Iterable[App]) -> Agreement:
    present = {a.name for a in apps if a.name != parent.name}
    declared = set(parent.children)
    missing = {r.name for r in parent.resources if r.kind == "Application" and r.health == "Missing"}
    return Agreement(parent.name, tuple(sorted(declared)), tuple(sorted(missing | (declared - present))),
                     tuple(sorted(present - declared)))


def sync_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """{name: (before, after)} for Applications that were Synced before and are not now (or are gone)."""
    return {name: (was, after.get(name, "deleted")) for name, was in before.items()
            if was == "Synced" and after.get(name, "deleted") != "Synced"}


# --- writing (the run's own Applications only) ----------------------------------------------

def manifest(name: str, namespace: str, *, repo: str, path: str, destination_namespace: str, project: str,
             automated: bool, self_heal: bool = False, prune: bool = False, revision: str = "HEAD") -> dict:
    """An Application of the run: in-cluster destination, with the finalizer that deletes its resources."""
    policy: dict = {}
    if automated:
        policy["automated"] = {"prune": prune, "selfHeal": self_heal}
    return {
        "apiVersion": API_VERSION, "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "finalizers": [FINALIZER]},
        "spec": {"project": project,
                 "source": {"repoURL": repo, "path": path, "targetRevision": revision},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": destination_namespace},
                 "syncPolicy": policy},
    }


def create(api: k8s.ApiClient, doc: dict) -> App:
    obj = _resource(DynamicClient(api)).create(body=doc, namespace=doc["metadata"]["namespace"],
                                                _request_timeout=REQUEST_TIMEOUT)
    return parse(obj.to_dict())


def refresh(api: k8s.ApiClient, namespace: str, name: str, hard: bool = False) -> None:
    """Ask the controller to compare now rather than at its next polling period."""
    _resource(DynamicClient(api)).patch(
        name=name, namespace=namespace, content_type="application/merge-patch+json",
        body={"metadata": {"annotations": {REFRESH_ANNOTATION: "hard" if hard else "normal"}}},
        _request_timeout=REQUEST_TIMEOUT)


def set_policy(api: k8s.ApiClient, namespace: str, name: str, *, self_heal: bool, prune: bool) -> None:
    _resource(DynamicClient(api)).patch(
        name=name, namespace=namespace, content_type="application/merge-patch+json",
        body={"spec": {"syncPolicy": {"automated": {"prune": prune, "selfHeal": self_heal}}}},
        _request_timeout=REQUEST_TIMEOUT)


# --- the run's git repository --------------------------------------------------------------

@dataclass(frozen=True)
class Commit:
    """A commit made in the git server's pod: its id, or the command's failure."""

    repo: str
    revision: str
    result: pods.ExecResult

    @property
    def ok(self) -> bool:
        return self.result.exit_code == 0 and len(self.revision) == 40

    def __str__(self) -> str:
        r = self.result
        return (f"commit in {r.where}:{self.repo}: exit {r.exit_code}, revision {self.revision or '-'}\n"
                f"stdout: {r.stdout.strip()}\nstderr: {r.stderr.strip()}")


def repo_url(service: str, namespace: str, domain: str, repo: str) -> str:
    return f"git://{service}.{namespace}.svc.{domain}/{repo}"


def commit(api: k8s.ApiClient, namespace: str, pod: str, repo: str, files: Mapping[str, str | None],
           message: str) -> Commit:
    """Write (or, for None, delete) files in the repository and commit them; creates the repository
    on first use. One shell script, so the commit is all or nothing."""
    work = f"{GIT_ROOT}/{repo}"
    git = f"git -C {shlex.quote(work)} -c user.name=platform-conformance -c user.email=pcf@invalid"
    lines = ["set -e", f"mkdir -p {shlex.quote(work)}",
             f"[ -d {shlex.quote(work)}/.git ] || git init -q -b main {shlex.quote(work)}"]
    for rel, text in files.items():
        target = shlex.quote(f"{work}/{rel}")
        if text is None:
            lines.append(f"rm -f {target}")
        else:
            lines.append(f"mkdir -p \"$(dirname {target})\"" if "/" in rel else "true")
            lines.append(f"printf '%s' {shlex.quote(text)} > {target}")
    lines += [f"{git} add -A", f"{git} commit -q --allow-empty -m {shlex.quote(message)}", f"{git} rev-parse HEAD"]
    result = pods.exec_in(api, namespace, pod, ["/bin/sh", "-c", "\n".join(lines)])
    revision = result.stdout.strip().splitlines()[-1] if result.exit_code == 0 and result.stdout.strip() else ""
    return Commit(repo, revision, result)


def config_map(name: str, data: Mapping[str, str]) -> str:
    """A ConfigMap manifest as YAML text, for a repository's content."""
    body = "".join(f"  {k}: {v!r}\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{body}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

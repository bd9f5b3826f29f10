"""Production-like Applications on the local cluster's real Argo CD, seeded with the admin identity.

Like production: an app-of-apps `bootstrap` (manual sync) whose repository path holds one
Application per platform module, each auto-synced without prune or self-heal. The repository
is served by the suite's own git server image in a namespace of the seed; the modules' objects
(ConfigMaps) live in `pcf-argocd-outside`. The children themselves are Applications in Argo CD's
namespace, which the profiles' write allowlist lets a run change, so the coexistence promise has
something real to protect. States are the ones Argo CD computes; nothing here writes an
Application's status.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from conformance import pods, run as runs, waiting
from conformance.probes import argocd, workloads

ARGOCD = "argocd"
SEED_NS = "pcf-argocd-seed"
OUTSIDE_NS = "pcf-argocd-outside"
REPO = "cluster"
MODULES = ("dns", "web")
SEEDED_S = 240.0


def child(name: str, url: str, path: str | None = None) -> str:
    """An Application manifest as the app-of-apps' repository holds it: auto-sync, no prune, no
    self-heal, written `automated: {}` as the API keeps it (false fields are dropped, and an
    app-of-apps holding `prune: false` would see its child as changed)."""
    return (f"apiVersion: {argocd.API_VERSION}\nkind: Application\nmetadata:\n  name: {name}\n"
            f"spec:\n  project: default\n  source:\n    repoURL: {url}\n    path: {path or 'modules/' + name}\n"
            f"    targetRevision: HEAD\n  destination:\n    server: https://kubernetes.default.svc\n"
            f"    namespace: {OUTSIDE_NS}\n  syncPolicy:\n    automated: {{}}\n")


@dataclass(frozen=True)
class Seed:
    api: object
    url: str

    def commit(self, files: dict, message: str) -> argocd.Commit:
        done = argocd.commit(self.api, SEED_NS, "git", REPO, files, message)
        assert done.ok, str(done)
        return done

    def sync_bootstrap(self) -> None:
        """What `argocd app sync bootstrap` does: ask the controller for a sync operation."""
        DynamicClient(self.api).resources.get(api_version=argocd.API_VERSION, kind="Application").patch(
            name="bootstrap", namespace=ARGOCD, content_type="application/merge-patch+json",
            body={"operation": {"sync": {"revision": "HEAD"}, "initiatedBy": {"username": "seed"}}})

    def refresh_all(self) -> None:
        for app in argocd.applications(self.api, ARGOCD):
            argocd.refresh(self.api, ARGOCD, app.name, hard=True)

    def wait(self, what: str, until, limit_s: float = SEEDED_S) -> tuple[argocd.App, ...]:
        return waiting.wait_for(what, lambda: argocd.applications(self.api, ARGOCD), until=until,
                                timeout=limit_s, interval=2.0, retry_on=pods.TRANSIENT)


def _namespace(core: k8s.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise


def _gone(dyn: DynamicClient, api) -> None:
    apps = dyn.resources.get(api_version=argocd.API_VERSION, kind="Application")
    for app in argocd.applications(api, ARGOCD):
        if app.labels.get(runs.MANAGED_BY_LABEL) != runs.MANAGED_BY:
            try:
                apps.delete(name=app.name, namespace=ARGOCD)
            except NotFoundError:
                pass
    waiting.wait_for("the seeded Applications to be gone", lambda: argocd.platform(argocd.applications(api, ARGOCD)),
                     until=lambda left: not left, timeout=120.0, interval=1.0)
    for ns in (OUTSIDE_NS, SEED_NS):
        runs.delete_and_wait(dyn, "v1", "Namespace", ns, timeout="namespace_deleted")


@contextmanager
def seeded(admin_api, modules: tuple[str, ...] = MODULES):
    """bootstrap and its children, Synced and Healthy; everything removed afterwards."""
    core, dyn = k8s.CoreV1Api(admin_api), DynamicClient(admin_api)
    try:
        for ns in (SEED_NS, OUTSIDE_NS):
            _namespace(core, ns)
        workloads.apply(admin_api, SEED_NS, "gitserver", None, NAME="git")
        pods.wait_pod(admin_api, SEED_NS, "git")
        seed = Seed(admin_api, argocd.repo_url("git", SEED_NS, "cluster.local", REPO))
        files = {f"apps/{m}.yaml": child(m, seed.url) for m in modules}
        files |= {f"modules/{m}/settings.yaml": argocd.config_map(f"{m}-settings", {"module": m}) for m in modules}
        seed.commit(files, "platform")
        boot = argocd.manifest("bootstrap", ARGOCD, repo=seed.url, path="apps", destination_namespace=ARGOCD,
                               project="default", automated=False)
        boot["metadata"].pop("finalizers")
        argocd.create(admin_api, boot)
        seed.sync_bootstrap()
        seed.wait("bootstrap and its children Synced and Healthy",
                  lambda apps: {a.name for a in argocd.platform(apps) if a.synced_and_healthy} >= {"bootstrap", *modules})
        yield seed
    finally:
        _gone(dyn, admin_api)

"""Argo CD: Applications sync, stay healthy, heal or report drift, prune, and clean up after themselves.

The full promises create Applications of the run in Argo CD's namespace whose source is a git
repository the run serves inside the cluster (git daemon in the module's namespace) and whose
destination is the test's own namespace; a refresh is requested after every push, so a test
measures Argo CD's work, not its polling period. Every state judged is the one Argo CD wrote into
the Application's status. The read-only promises judge the platform's own Applications (every
Application the suite did not create) and run in both modes.
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance.pods import TRANSIENT
from conformance.probes import argocd
from conformance.waiting import wait_for

# A Deployment that must become Available for the Application to be Healthy (the probe image,
# admitted under Pod Security `restricted`).
PROBE_IMAGE = "localhost/platform-conformance/probe:0.1.0"


def _deployment(name: str, image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      securityContext: {{runAsNonRoot: true, runAsUser: 65534, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
      - name: sleep
        image: {image}
        imagePullPolicy: IfNotPresent
        securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}
"""


def _push(kube, git_server, repo: str, files: dict, message: str) -> argocd.Commit:
    done = argocd.commit(kube, git_server.namespace, git_server.pod, repo, files, message)
    assert done.ok, str(done)
    return done


def _synced_at(revision: str):
    """Synced and Healthy at exactly this commit."""
    return lambda o: o.app is not None and o.app.synced_and_healthy and o.app.revision == revision


def _config_map(kube, namespace: str, name: str) -> dict | None:
    try:
        return k8s.CoreV1Api(kube).read_namespaced_config_map(name, namespace).data
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _synced_app(kube, git_server, make_app, watch_app, namespace, purpose: str, files: dict, **policy):
    """A repository with `files`, an automated Application of it, Synced and Healthy at that commit."""
    first = _push(kube, git_server, purpose, files, "first")
    app = make_app(purpose, repo=git_server.url(purpose), path="app", destination_namespace=namespace,
                   automated=True, **policy)
    argocd.refresh(kube, app.namespace, app.name)
    watch_app(app, f"to be Synced and Healthy at {first.revision[:12]}", _synced_at(first.revision))
    return app, first


# --- full: the run's own Applications --------------------------------------------------------

@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/sync/synced-healthy")
def test_application_becomes_synced_and_healthy_within_budget(kube, git_server, make_app, watch_app, namespace,
                                                              profile, record_measurement):
    """An Application of a repository served in the cluster MUST become Synced and Healthy within budgets.application_synced_s.

    Measured from the create (with a refresh requested at once) to the state Argo CD reports;
    the Deployment in it must be Available for Healthy, so a sync that applies nothing fails.
    """
    image = profile.images.image(PROBE_IMAGE)
    first = _push(kube, git_server, "synced", {"app/config.yaml": argocd.config_map("settings", {"colour": "blue"}),
                                               "app/deploy.yaml": _deployment("sleeper", image)}, "first")
    started = argocd.now()
    app = make_app("synced", repo=git_server.url("synced"), path="app", destination_namespace=namespace,
                   automated=True)
    argocd.refresh(kube, app.namespace, app.name)
    seen = watch_app(app, f"to be Synced and Healthy at {first.revision[:12]}", _synced_at(first.revision))
    took = record_measurement("application synced and healthy", (argocd.now() - started).total_seconds(), "s",
                              budget="application_synced_s")
    assert took.value <= took.budget, f"{took}\n{seen}"
    assert _config_map(kube, namespace, "settings") == {"colour": "blue"}, str(seen)
    ready = k8s.AppsV1Api(kube).read_namespaced_deployment("sleeper", namespace).status.available_replicas
    assert ready == 1, f"Deployment {namespace}/sleeper has {ready} available replicas while Argo CD says Healthy\n{seen}"


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/sync/pushed-change")
def test_pushed_change_is_applied(kube, git_server, make_app, watch_app, namespace, record_measurement):
    """A change pushed to an Application's repository MUST be applied to the cluster.

    The Application must report the new commit as synced and the object must hold the new value.
    """
    app, _ = _synced_app(kube, git_server, make_app, watch_app, namespace, "pushed",
                         {"app/config.yaml": argocd.config_map("settings", {"colour": "blue"})})
    second = _push(kube, git_server, "pushed", {"app/config.yaml": argocd.config_map("settings", {"colour": "green"})},
                   "second")
    started = argocd.now()
    argocd.refresh(kube, app.namespace, app.name)
    seen = watch_app(app, f"to sync the pushed commit {second.revision[:12]}", _synced_at(second.revision))
    record_measurement("pushed change applied", (argocd.now() - started).total_seconds(), "s")
    assert _config_map(kube, namespace, "settings") == {"colour": "green"}, str(seen)


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/drift/self-heal-reverts")
def test_drift_is_reverted_when_self_heal_is_on(kube, git_server, make_app, watch_app, namespace, record_measurement):
    """With self-heal on, a change made by hand to a managed object MUST be reverted to what git holds."""
    app, first = _synced_app(kube, git_server, make_app, watch_app, namespace, "selfheal",
                             {"app/config.yaml": argocd.config_map("settings", {"colour": "blue"})}, self_heal=True)
    k8s.CoreV1Api(kube).patch_namespaced_config_map("settings", namespace, {"data": {"colour": "red"}})
    started = argocd.now()
    seen = watch_app(app, "to revert the hand-made change of ConfigMap settings",
                     lambda o: _config_map(kube, namespace, "settings") == {"colour": "blue"}
                     and o.app is not None and o.app.synced_and_healthy, timeout="application_compared")
    record_measurement("drift reverted", (argocd.now() - started).total_seconds(), "s")
    assert seen.app.revision == first.revision, str(seen)


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/drift/reported-out-of-sync")
def test_drift_is_reported_out_of_sync_when_self_heal_is_off(kube, git_server, make_app, watch_app, namespace):
    """With self-heal off, a change made by hand MUST be reported OutOfSync, naming the object, and left alone."""
    app, _ = _synced_app(kube, git_server, make_app, watch_app, namespace, "drift",
                         {"app/config.yaml": argocd.config_map("settings", {"colour": "blue"})}, self_heal=False)
    k8s.CoreV1Api(kube).patch_namespaced_config_map("settings", namespace, {"data": {"colour": "red"}})
    seen = watch_app(app, "to report ConfigMap settings OutOfSync",
                     lambda o: o.app is not None and o.app.sync == "OutOfSync", timeout="application_compared")
    assert [str(r) for r in seen.app.out_of_sync if r.kind == "ConfigMap"] == \
        [f"ConfigMap {namespace}/settings (OutOfSync)"], str(seen)
    assert _config_map(kube, namespace, "settings") == {"colour": "red"}, \
        f"the hand-made change was reverted although self-heal is off\n{seen}"


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/sync/prune")
def test_prune_removes_object_deleted_from_git(kube, git_server, make_app, watch_app, namespace):
    """With prune on, an object deleted from the repository MUST be deleted from the cluster."""
    app, _ = _synced_app(kube, git_server, make_app, watch_app, namespace, "prune",
                         {"app/keep.yaml": argocd.config_map("keep", {"a": "1"}),
                          "app/gone.yaml": argocd.config_map("gone", {"b": "2"})}, prune=True)
    second = _push(kube, git_server, "prune", {"app/gone.yaml": None}, "remove gone")
    argocd.refresh(kube, app.namespace, app.name)
    seen = watch_app(app, f"to sync {second.revision[:12]} and prune ConfigMap gone",
                     lambda o: _synced_at(second.revision)(o) and _config_map(kube, namespace, "gone") is None)
    assert _config_map(kube, namespace, "keep") == {"a": "1"}, str(seen)


@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/delete/finalizer-removes-resources")
def test_deleting_application_removes_its_resources(kube, dyn, git_server, make_app, watch_app, namespace):
    """Deleting an Application that carries the resources finalizer MUST delete every object it manages."""
    app, _ = _synced_app(kube, git_server, make_app, watch_app, namespace, "delete",
                         {"app/config.yaml": argocd.config_map("settings", {"colour": "blue"})})
    argocd_resource = dyn.resources.get(api_version=argocd.API_VERSION, kind="Application")
    argocd_resource.delete(name=app.name, namespace=app.namespace)
    seen = watch_app(app, "to be gone with ConfigMap settings", lambda o: o.app is None
                     and _config_map(kube, namespace, "settings") is None, timeout="application_deleted")
    assert seen.app is None, str(seen)


# --- read-only: the platform's Applications --------------------------------------------------

def _platform_apps(kube, profile) -> tuple[argocd.App, ...]:
    return argocd.platform(argocd.applications(kube, profile.components.argocd.namespace))


@pytest.mark.argocd
@pytest.mark.promise("argocd/parts/up")
def test_repo_server_and_application_controller_are_up(kube, profile):
    """Argo CD's repo server and application controller MUST run with every replica ready."""
    found = argocd.parts(kube, profile.components.argocd.namespace)
    assert [str(w) for w in found.down] == [], str(found)


@pytest.mark.argocd
@pytest.mark.promise("argocd/apps/synced-healthy")
def test_every_application_is_synced_and_healthy(kube, profile):
    """Every Application of the platform MUST be Synced and Healthy; each one that is not is listed with its condition.

    The condition is Argo CD's own: a ComparisonError (e.g. a source path that does not exist),
    the resources it finds OutOfSync, or the last sync operation's message.
    """
    apps = _platform_apps(kube, profile)
    bad = [a for a in apps if not a.synced_and_healthy]
    state = {a.name: (a.sync, a.health) for a in apps}
    detail = "\n".join(str(a) for a in bad)
    parts = argocd.parts(kube, profile.components.argocd.namespace)
    assert state == {n: ("Synced", "Healthy") for n in state}, \
        f"{len(bad)} of {len(apps)} Applications are not Synced and Healthy:\n{detail}\n{parts}"


@pytest.mark.argocd
@pytest.mark.covers("argocd/app-of-apps")
@pytest.mark.promise("argocd/apps/app-of-apps")
def test_app_of_apps_agrees_with_its_children(kube, profile):
    """The app-of-apps MUST declare every Application there is, and every child it declares MUST exist."""
    section = profile.components.argocd
    if not section.app_of_apps:
        pytest.skip(f"profile {profile.name} names no app-of-apps (components.argocd.app_of_apps)")
    apps = _platform_apps(kube, profile)
    parent = next((a for a in apps if a.name == section.app_of_apps), None)
    assert parent is not None, (f"the app-of-apps {section.namespace}/{section.app_of_apps} does not exist; "
                                f"Applications: {[a.name for a in apps]}")
    found = argocd.agreement(parent, apps)
    assert (found.missing, found.undeclared) == ((), ()), (
        f"{parent.name} declares {list(found.declared)}; declared but missing: {list(found.missing)}; "
        f"present but not declared: {list(found.undeclared)}\n{parent}")


@pytest.mark.argocd
@pytest.mark.promise("argocd/apps/sync-policy")
def test_every_application_sync_policy_matches_profile(kube, profile):
    """Each Application's sync policy MUST be the one the profile declares (components.argocd.sync_policy, manual_apps)."""
    section = profile.components.argocd
    want = argocd.Policy(section.sync_policy.automated, section.sync_policy.prune, section.sync_policy.self_heal)
    apps = _platform_apps(kube, profile)
    wrong = argocd.policy_mismatches(apps, want, section.manual_apps)
    assert wrong == {}, "\n".join(f"{name}: declares {got}, the profile expects {exp}"
                                  for name, (got, exp) in wrong.items())


# --- coexistence: the whole run against everyone else's Applications -------------------------

@pytest.mark.argocd
@pytest.mark.writes
@pytest.mark.promise("argocd/coexistence/outside-in-sync")
def test_full_run_leaves_outside_applications_in_sync(kube, profile, outside_before):
    """A full run MUST leave every Application it did not create as Synced as it found it.

    Only a full run can change anything, so only a full run checks it. Compared with the picture
    taken before the first test; this test runs last. A refresh of
    each is requested (the write allowlist names Applications in Argo CD's namespace), so the
    verdict is Argo CD's comparison made after everything the run did, not a stale one.
    """
    namespace = profile.components.argocd.namespace
    requested = argocd.now()
    for app in _platform_apps(kube, profile):
        argocd.refresh(kube, namespace, app.name)
    apps = wait_for("every Application outside the run to be compared again",
                    lambda: _platform_apps(kube, profile), until=lambda found: all(
                        a.compared_since(requested) for a in found), timeout="application_compared",
                    retry_on=TRANSIENT)
    changed = argocd.sync_changes(outside_before, {a.name: a.sync for a in apps})
    detail = "\n".join(str(a) for a in apps if a.name in changed)
    assert changed == {}, f"Applications the run did not create went out of sync: {changed}\n{detail}"

"""Things declared in two places agree: markers, and what the RBAC manifests grant."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from conformance import profile as profiles, run as runs
from conformance.guard import CONTROL_NAMESPACE
from fixtures.promises import MARKERS

ROOT = Path(__file__).resolve().parents[2]
RBAC = [d for f in sorted((ROOT / "manifests" / "rbac").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def by(kind, name):
    return next(d for d in RBAC if d["kind"] == kind and d["metadata"]["name"] == name)


def grants(role, verb, resource_id):
    plural, _, group = resource_id.partition(".")
    return any(verb in r["verbs"] and group in r.get("apiGroups", []) and plural in r.get("resources", [])
               for r in role["rules"])


def test_pyproject_registers_the_markers_the_plugin_registers():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert ini["markers"] == [f"{sig}: {doc}" for sig, doc in MARKERS.items()]
    assert "--strict-markers" in ini["addopts"]


def test_reader_only_reads_and_never_secrets():
    reader = by("ClusterRole", "platform-conformance-reader")
    assert {v for r in reader["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    core = [r for r in reader["rules"] if "" in r.get("apiGroups", [])]
    assert all("*" not in r["resources"] and "secrets" not in r["resources"] for r in core)


def test_runner_rbac_covers_every_shipped_allowlist():
    runner = by("ClusterRole", "platform-conformance-runner")
    for name in profiles.shipped():
        allow = profiles.load(name).write_allowlist
        for resource in list(allow.cluster_scoped) + [w.resource for w in allow.namespaced]:
            assert grants(runner, "create", resource) and grants(runner, "delete", resource), (name, resource)
    assert grants(runner, "create", "namespaces") and grants(runner, "delete", "namespaces")


def test_run_namespaces_get_the_role_the_manifests_define():
    role = by("ClusterRole", runs.RUN_NAMESPACE_ROLE)
    assert grants(role, "create", "pods") and grants(role, "create", "rolebindings.rbac.authorization.k8s.io") is False
    runner = by("ClusterRole", "platform-conformance-runner")
    assert any("bind" in r["verbs"] and r.get("resourceNames") == [runs.RUN_NAMESPACE_ROLE] for r in runner["rules"])
    binding = by("ClusterRoleBinding", "platform-conformance-runner")
    assert binding["subjects"] == [dict(s) for s in runs.RUNNER_SUBJECTS]


def test_control_namespace_holds_the_lease():
    assert by("Namespace", CONTROL_NAMESPACE)
    control = by("Role", "platform-conformance-control")
    assert control["metadata"]["namespace"] == CONTROL_NAMESPACE
    assert grants(control, "update", "leases.coordination.k8s.io")


def floors() -> dict[str, str]:
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {Requirement(d).name.lower(): next(s.version for s in Requirement(d).specifier if s.operator == ">=")
            for d in deps}


def test_dependency_floors_are_what_the_code_needs_and_what_ran():
    """The guard hooks ApiClient.param_serialize, which the generated client has from kubernetes
    37 on (31 to 36 lack it); and no floor is above a version the tests ran with."""
    from importlib.metadata import version

    from kubernetes import client as k8s
    from packaging.version import Version

    found = floors()
    assert Version(found["kubernetes"]) >= Version("37") and hasattr(k8s.ApiClient, "param_serialize")
    assert {name: floor for name, floor in found.items() if Version(version(name)) < Version(floor)} == {}

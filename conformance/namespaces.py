"""Run namespaces: created labelled (by the guarded client's stamp), writable by the runner, and
ready for pods before they are handed out. Test namespaces and an upgrade gate's sentinel
namespace are made the same way."""
from __future__ import annotations

from typing import Callable

from kubernetes import client as k8s

from conformance import run as runs
from conformance.waiting import wait_for

# Every namespace a run makes enforces the restricted Pod Security level: probes must run
# under the same rules as the most careful tenant.
POD_SECURITY = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")} | {
    "pod-security.kubernetes.io/enforce-version": "latest"}


def create(kube: k8s.ApiClient, name: str, annotations: dict[str, str] | None = None,
           on_created: Callable[[str], None] | None = None, labels: dict[str, str] | None = None) -> str:
    """Create namespace `name` and wait until the runner may write there and pods can be made;
    `on_created` runs right after the create (register the deletion there)."""
    core = k8s.CoreV1Api(kube)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {**POD_SECURITY, **(labels or {})}, "annotations": dict(annotations or {})}})
    if on_created:
        on_created(name)
    k8s.RbacAuthorizationV1Api(kube).create_namespaced_role_binding(name, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "platform-conformance-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": runs.RUN_NAMESPACE_ROLE},
        "subjects": list(runs.RUNNER_SUBJECTS)})
    # Writes are refused until the RoleBinding reaches the authoriser, and pods until the
    # namespace's default ServiceAccount exists; a dry-run create asks without leaving a trace.
    wait_for(f"write access to namespace {name}", lambda: _can_write(core, name), timeout="namespace_active")
    wait_for(f"ServiceAccount default in namespace {name}",
             lambda: core.read_namespaced_service_account("default", name).metadata.name,
             timeout="namespace_active")
    return name


def _can_write(core: k8s.CoreV1Api, namespace: str) -> bool:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "pcf-write-check"}}, dry_run="All")
    return True

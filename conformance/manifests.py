"""The one manifest loader: server-side apply through the dynamic client, CRDs first.

Manifests are data. Every kind, custom ones included, goes through the same path, so there is
no wrapper per kind; objects are applied in dependency order and CRDs must be established
before anything that uses them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from conformance import kube
from conformance.waiting import wait_for

FIELD_MANAGER = "platform-conformance"

# Kinds that others depend on go first; everything else keeps file order.
ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
         "Role", "RoleBinding", "ConfigMap", "Secret", "Service")


@dataclass(frozen=True)
class Applied:
    """One object the loader applied."""

    api_version: str
    kind: str
    namespace: str | None
    name: str


def read(sources: Iterable[Path]) -> list[dict]:
    """All YAML documents under the given files or folders, folders in name order."""
    docs: list[dict] = []
    for src in sources:
        files = sorted(src.rglob("*.yaml")) if src.is_dir() else [src]
        for f in files:
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def ordered(docs: list[dict]) -> list[dict]:
    rank = {kind: i for i, kind in enumerate(ORDER)}
    return sorted(docs, key=lambda d: rank.get(d.get("kind"), len(ORDER)))


def api_client(kubeconfig: Path | str | None = None, context: str | None = None) -> k8s.ApiClient:
    """A plain client for a kubeconfig (the harness's and the tests' admin); a bad kubeconfig or
    context raises the suite's own KubeconfigError, which names the input and the fix."""
    target = kube.resolve_target(str(kubeconfig) if kubeconfig else None, context)
    return k8s.ApiClient(kube.configuration(target))


def _wait_established(dyn: DynamicClient, name: str) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    wait_for(f"CRD {name} to be Established",
             lambda: (crds.get(name=name).to_dict().get("status") or {}).get("conditions") or [],
             until=lambda conditions: any(c["type"] == "Established" and c["status"] == "True"
                                          for c in conditions),
             timeout="crd_established", interval=0.5)


def apply(docs: list[dict], api: k8s.ApiClient, namespace: str | None = None,
          mutate=None) -> list[Applied]:
    """Server-side apply each document; `mutate` may stamp labels (it gets and returns a dict)."""
    dyn = DynamicClient(api)
    applied = []
    for doc in ordered(docs):
        if mutate:
            doc = mutate(doc)
        try:
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        except ResourceNotFoundError:
            # A CRD applied moments ago: refresh discovery once before giving up.
            dyn.resources.invalidate_cache()
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        meta = doc["metadata"]
        ns = meta.get("namespace") or (namespace if resource.namespaced else None)
        if ns and resource.namespaced:
            meta["namespace"] = ns
        resource.server_side_apply(body=doc, name=meta["name"], namespace=ns,
                                   field_manager=FIELD_MANAGER, force_conflicts=True)
        applied.append(Applied(doc["apiVersion"], doc["kind"], ns if resource.namespaced else None, meta["name"]))
        if doc["kind"] == "CustomResourceDefinition":
            _wait_established(dyn, meta["name"])
            dyn.resources.invalidate_cache()
    return applied


def apply_paths(sources: Iterable[Path], kubeconfig: Path | str | None = None,
                api: k8s.ApiClient | None = None) -> list[Applied]:
    return apply(read(sources), api or api_client(kubeconfig))

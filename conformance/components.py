"""The components a platform can claim, and the custom resources each one brings.

This is the one list the profile schema, the component markers and the diagnostics read. A
claimed component whose custom resources are missing fails its promises, naming the CRD; the
same kinds are the objects whose status the failure diagnostics collect.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CustomKind:
    """A custom resource a component serves, as the API server names it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    # False for one implementation's kinds (Rook's), which the promises needing them check.
    required: bool = True

    @property
    def crd(self) -> str:
        """The CustomResourceDefinition's name, as `kubectl get crd` prints it."""
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class Component:
    """One part of the platform; its name is the test marker and the promise id prefix."""

    name: str
    title: str
    kinds: tuple[CustomKind, ...] = ()

    @property
    def promise_prefix(self) -> str:
        """Promise ids of this component start with this segment (`control-plane/...`)."""
        return self.name.replace("_", "-")


_CERT = "cert-manager.io"
_ACME = "acme.cert-manager.io"

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("control_plane", "the API server, controllers and nodes"),
        Component("runtime", "the container runtime on each node"),
        Component("networking", "pod networking, Services and NetworkPolicy"),
        Component("dns", "cluster DNS"),
        Component("cilium", "the Cilium agent and operator", (
            CustomKind("cilium.io", "v2", "ciliumnodes", "CiliumNode", namespaced=False),
            CustomKind("cilium.io", "v2", "ciliumendpoints", "CiliumEndpoint"),
        )),
        Component("ingress", "the ingress controller behind the profile's IngressClass"),
        Component("metallb", "LoadBalancer addresses announced by MetalLB", (
            CustomKind("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool"),
            CustomKind("metallb.io", "v1beta1", "l2advertisements", "L2Advertisement"),
        )),
        Component("cert_manager", "certificates issued by cert-manager", (
            CustomKind(_CERT, "v1", "certificates", "Certificate"),
            CustomKind(_CERT, "v1", "certificaterequests", "CertificateRequest"),
            CustomKind(_CERT, "v1", "issuers", "Issuer"),
            CustomKind(_CERT, "v1", "clusterissuers", "ClusterIssuer", namespaced=False),
            CustomKind(_ACME, "v1", "orders", "Order"),
            CustomKind(_ACME, "v1", "challenges", "Challenge"),
        )),
        Component("storage", "persistent volumes from the profile's StorageClasses", (
            CustomKind("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", required=False),
            CustomKind("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
                       "VolumeSnapshotClass", namespaced=False, required=False),
        )),
        Component("object_storage", "S3 buckets from the Ceph object store", (
            CustomKind("objectbucket.io", "v1alpha1", "objectbucketclaims", "ObjectBucketClaim", required=False),
        )),
        Component("ceph", "Ceph's own health and the pools its StorageClasses name", (
            CustomKind("ceph.rook.io", "v1", "cephclusters", "CephCluster", required=False),
            CustomKind("ceph.rook.io", "v1", "cephblockpools", "CephBlockPool", required=False),
            CustomKind("ceph.rook.io", "v1", "cephfilesystems", "CephFilesystem", required=False),
            CustomKind("ceph.rook.io", "v1", "cephobjectstores", "CephObjectStore", required=False),
        )),
        Component("vault", "the Vault server"),
        # The sync object's kind depends on the profile's operator (conformance/probes/secret_sync.py
        # has one adapter per operator, which checks its own CRD and collects its objects' status).
        Component("vault_secrets", "Secrets synced from Vault by the profile's operator"),
        Component("argocd", "Applications synced by Argo CD", (
            CustomKind("argoproj.io", "v1alpha1", "applications", "Application"),
            CustomKind("argoproj.io", "v1alpha1", "appprojects", "AppProject"),
        )),
    )
}

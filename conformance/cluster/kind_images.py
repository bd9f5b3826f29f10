"""The images a kind node needs beyond the stack's, packed from built programs and Debian's files.

kube-proxy and kube-router program the node's packet filter, so their images carry Debian's
legacy iptables (the mode kind's entrypoint picks in a node's fresh network namespace) with
its extensions, ipset, and a static busybox for the shell kube-router's init container runs.
The control-plane images (one static binary each) are plain entries of the stack list.
"""
from __future__ import annotations

from pathlib import Path

from conformance.cluster.argocd_images import _busybox, _host
from conformance.cluster.build import programs
from conformance.cluster.images import (Entry, File, ImageConfig, ImageSpec, Symlink, binary_with_libraries,
                                        build_image, library_closure)

XTABLES_DIR = Path("/usr/lib/x86_64-linux-gnu/xtables")
IPTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                  "ip6tables-restore", *(f"{n}-legacy" for n in ("iptables", "iptables-save", "iptables-restore",
                                                                   "ip6tables", "ip6tables-save", "ip6tables-restore")))
KUBE_PROXY_IMAGE = "registry.k8s.io/kube-proxy:{version}"
KUBE_ROUTER_IMAGE = "docker.io/cloudnativelabs/kube-router:{version}"
PACKAGES = ("iptables", "ipset", "busybox-static")


def _iptables() -> dict[str, Entry]:
    """Legacy iptables under every name kube-proxy and kube-router call, with its extensions."""
    multi = _host("xtables-legacy-multi", "iptables")
    contents = binary_with_libraries(multi, "/usr/sbin/xtables-legacy-multi")
    contents.update({f"/usr/sbin/{name}": Symlink("xtables-legacy-multi") for name in IPTABLES_NAMES})
    for extension in sorted(XTABLES_DIR.glob("*.so")):
        contents[str(extension)] = File(extension.resolve())
        contents.update({path: File(host) for path, host in library_closure(extension).items()})
    return contents


def kube_proxy_spec() -> ImageSpec:
    k8s = programs()["kubernetes"]
    contents = {"/usr/local/bin/kube-proxy": File(k8s.binary("kube-proxy"), 0o755), **_iptables()}
    return ImageSpec(name=KUBE_PROXY_IMAGE.format(version=k8s.version), contents=contents,
                     config=ImageConfig(entrypoint=("/usr/local/bin/kube-proxy",)))


def kube_router_spec() -> ImageSpec:
    router = programs()["kube-router"]
    contents = {"/usr/local/bin/kube-router": File(router.binary("kube-router"), 0o755), **_iptables(),
                **binary_with_libraries(_host("ipset", "ipset"), "/usr/sbin/ipset"), **_busybox()}
    return ImageSpec(name=KUBE_ROUTER_IMAGE.format(version=router.version), contents=contents,
                     config=ImageConfig(entrypoint=("/usr/local/bin/kube-router",)))


def build_kube_proxy() -> Path:
    return build_image(kube_proxy_spec())


def build_kube_router() -> Path:
    return build_image(kube_router_spec())


BUILDERS = {"kind-kube-proxy": build_kube_proxy, "kind-kube-router": build_kube_router}

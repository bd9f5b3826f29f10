"""Upstream's e2e test images, rebuilt here under their upstream names and tags, carrying what
upstream's carry.

Upstream's tests run more than the image's own program inside these images: DNS queriers run
`sh -c "dig ..."`, others nc and curl, one starts `/coredns` from the agnhost image. So each is
a Debian root filesystem (rootfs.py) with the upstream binaries built from the pinned modules
on top, shaped after upstream's Dockerfiles (test/images/<name>/Dockerfile of the pinned
k8s.io/kubernetes): agnhost (alpine there: bind-tools, curl, netcat-openbsd, iproute2, iperf,
bash; /agnhost, /agnhost-2, /coredns, /uploads, porter's localhost certificate, a user and a
group defined in the image), glibc-dns-testing (Debian there too: dnsutils and /coredns),
busybox (busybox with its applets) and the pause tag upstream's e2e names.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Callable

from conformance.cluster import rootfs
from conformance.cluster.build import Program
from conformance.cluster.images import (Data, Dir, Entry, File, ImageConfig, ImageError, ImageSpec, Symlink,
                                        build_image, library_closure)
from conformance.cluster.probe_image import build_pause_image, pause_pin

# One root filesystem for both Debian-based images: the tools upstream's agnhost installs
# (Debian's names for them), which include glibc-dns-testing's dnsutils.
TOOLS = rootfs.RootFs(("bind9-dnsutils", "curl", "netcat-openbsd", "iproute2", "iperf", "procps"))
PORTER = "test/images/agnhost/porter"   # where upstream keeps the certificate its Dockerfile adds
# Upstream's agnhost Dockerfile adds this user and group; some tests look them up by id.
IMAGE_USER = ("user-defined-in-image", 1000)
IMAGE_GROUP = ("group-defined-in-image", 50000)
BUSYBOX_TIMEOUT_S = 30


def _base_file(base: Path, path: str) -> bytes:
    with tarfile.open(base) as rootfs_tar:
        member = rootfs_tar.extractfile(f"./{path.lstrip('/')}")
        if member is None:
            raise ImageError(f"{base} holds no regular file {path}")
        return member.read()


def _built(program: Program, binary: str) -> Path:
    path = program.binary(binary)
    if not path.exists():
        raise ImageError(f"{path} is not built: `python -m conformance.cluster up` builds {program.name}")
    return path


def agnhost_spec(name: str, progs: dict[str, Program], log=print) -> ImageSpec:
    base = rootfs.build(TOOLS, log)
    kubernetes = progs["kubernetes"]
    user, uid = IMAGE_USER
    group, gid = IMAGE_GROUP
    passwd = _base_file(base, "/etc/passwd") + f"{user}:x:{uid}:{uid}::/home/{user}:/bin/sh\n".encode()
    groups = _base_file(base, "/etc/group") + f"{user}:x:{uid}:\n{group}:x:{gid}:{user}\n".encode()
    porter = kubernetes.source() / PORTER
    contents: dict[str, Entry] = {
        "/agnhost": File(_built(kubernetes, "agnhost"), 0o755),
        "/agnhost-2": Symlink("agnhost"),
        "/coredns": File(_built(progs["coredns"], "coredns"), 0o755),
        "/uploads": Dir(),
        "/localhost.crt": File(porter / "localhost.crt", 0o644),
        "/localhost.key": File(porter / "localhost.key", 0o644),
        "/usr/local/bin/iperf": Symlink("/usr/bin/iperf"),
        "/etc/passwd": Data(passwd),
        "/etc/group": Data(groups),
    }
    return ImageSpec(name=name, contents=contents, base=base,
                     config=ImageConfig(entrypoint=("/agnhost",), cmd=("pause",)))


def glibc_dns_testing_spec(name: str, progs: dict[str, Program], log=print) -> ImageSpec:
    return ImageSpec(name=name, base=rootfs.build(TOOLS, log),
                     contents={"/coredns": File(_built(progs["coredns"], "coredns"), 0o755)},
                     config=ImageConfig(cmd=("bash",)))


def busybox_spec(name: str, progs: dict[str, Program], log=print) -> ImageSpec:
    """Debian's static busybox with a link for every applet it lists, as upstream's busybox image."""
    found = shutil.which("busybox")
    if not found or library_closure(Path(found)):
        raise ImageError("a static busybox is needed: apt-get install -y busybox-static")
    listed = subprocess.run([found, "--list-full"], capture_output=True, text=True, timeout=BUSYBOX_TIMEOUT_S,
                            check=True).stdout.split()
    contents: dict[str, Entry] = {"/bin/busybox": File(Path(found).resolve(), 0o755), "/tmp": Dir(0o1777)}
    contents.update({f"/{applet}": Symlink("/bin/busybox") for applet in listed if applet != "bin/busybox"})
    return ImageSpec(name=name, contents=contents, config=ImageConfig(cmd=("sh",)))


def pause(name: str, progs: dict[str, Program], log=print) -> Path:
    """The pause image under the tag upstream's e2e names (the cluster's own pause is pinned apart)."""
    return build_pause_image(dataclasses.replace(pause_pin(), name=name))


def _archive(make_spec: Callable[..., ImageSpec]) -> Callable[..., Path]:
    return lambda name, progs, log=print: build_image(make_spec(name, progs, log))


# Builders by the stack list's `build:` name; each takes the image's full name and the programs.
BUILDERS: dict[str, Callable[..., Path]] = {
    "e2e-agnhost": _archive(agnhost_spec),
    "e2e-glibc-dns-testing": _archive(glibc_dns_testing_spec),
    "e2e-busybox": _archive(busybox_spec),
    "e2e-pause": pause,
}
PACKAGES = {**rootfs.PACKAGES, "busybox": "busybox-static"}

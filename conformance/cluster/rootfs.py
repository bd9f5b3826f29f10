"""Debian root filesystems for the images that must carry a distribution's tools.

Upstream's e2e test images are not one static binary: their tests run a shell, dig, nc and
curl inside them. Such an image is a Debian root filesystem (mmdebstrap, a minbase of the
pinned suite plus the named packages, from Debian's mirror) with the upstream binaries added
on top (e2e_images.py). A root filesystem is a tar in the machine cache named by everything
that decides its contents, so it is made once (about a minute) and reused by every image and
every later run.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster import paths
from conformance.cluster.build import _stream
from conformance.cluster.errors import HarnessError
from conformance.cluster.progress import BuildProgress

SUITE = "bookworm"
MMDEBSTRAP_TIMEOUT_S = 900
# Documentation and translations no test reads; leaving them out halves the tar.
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
PACKAGES = {"mmdebstrap": "mmdebstrap"}   # what building one needs on the host


@dataclass(frozen=True)
class RootFs:
    """A minbase Debian root filesystem with `packages` installed."""

    packages: tuple[str, ...]
    suite: str = SUITE

    @property
    def key(self) -> str:
        doc = {"suite": self.suite, "variant": "minbase", "packages": sorted(self.packages),
               "excludes": list(EXCLUDES)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def path(self) -> Path:
        return paths.CACHE / "rootfs" / f"{self.suite}-{self.key}.tar"


def build(rootfs: RootFs, log=print) -> Path:
    """The cached tar of `rootfs`, made with mmdebstrap first when missing (a line every 15 s)."""
    if rootfs.path.is_file():
        return rootfs.path
    if shutil.which("mmdebstrap") is None:
        raise HarnessError("mmdebstrap is not installed; it makes the root filesystem of upstream's test images",
                           fix="apt-get install -y mmdebstrap")
    rootfs.path.parent.mkdir(parents=True, exist_ok=True)
    partial = rootfs.path.with_name(rootfs.path.name + ".partial")
    partial.unlink(missing_ok=True)
    progress = BuildProgress(f"debian-{rootfs.suite}-rootfs", rootfs.key, log)
    log(f"making a Debian {rootfs.suite} root filesystem with {', '.join(rootfs.packages)} "
        f"(mmdebstrap from Debian's mirror; cached as {rootfs.path})")
    argv = ["mmdebstrap", "--variant=minbase", "--format=tar", f"--include={','.join(rootfs.packages)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDES), rootfs.suite, str(partial)]

    def said(line: str) -> None:
        # mmdebstrap names each stage in an `I:` line: that is the stage the ticker repeats.
        if line.startswith("I: "):
            progress.stage = line[3:].strip()

    try:
        with progress.ticking():
            progress.step("running mmdebstrap")
            _stream(argv, None, None, MMDEBSTRAP_TIMEOUT_S, said)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(rootfs.path)
    log(f"root filesystem ready: {rootfs.path} ({rootfs.path.stat().st_size / 2**20:.0f} MiB)")
    return rootfs.path

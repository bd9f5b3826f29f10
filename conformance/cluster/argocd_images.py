"""The images Argo CD needs on the local cluster, packed from the built program and Debian's files.

Three images, none pulled: Argo CD's own (the one binary built from its Go module, named for
each role by a symlink as upstream's Dockerfile does, with Debian's git for the repo server and a
static busybox for the `cp` its init container runs), Redis (Debian's redis-server with its
libraries) and the suite's git server (Debian's git and git-daemon with a busybox shell, so a
test can commit into a repository it serves inside the cluster). Upstream's manifests are
patched to these names by the stack list. The Argo CD image runs as uid 999 like upstream's;
it carries no GnuPG, so commit signature verification is switched off in its environment.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from conformance.cluster.build import programs
from conformance.probes import workloads
from conformance.cluster.images import (
    DEFAULT_PATH_ENV,
    Data,
    Dir,
    Entry,
    File,
    ImageConfig,
    ImageError,
    ImageSpec,
    Symlink,
    binary_with_libraries,
    build_image,
    library_closure,
)

PROGRAM = "argocd"
ARGOCD_IMAGE = "localhost/platform-conformance/argocd:v3.0.12"
REDIS_IMAGE = "localhost/platform-conformance/redis:7.0"
GIT_IMAGE = workloads.GIT_IMAGE
ARGOCD_UID = 999
NOBODY = 65534
# Every role upstream's Dockerfile links to the one binary; it picks its role from argv[0].
ROLES = ("argocd-server", "argocd-repo-server", "argocd-cmp-server", "argocd-application-controller",
         "argocd-dex", "argocd-notifications", "argocd-applicationset-controller", "argocd-k8s-auth",
         "argocd-commit-server")
BUSYBOX_APPLETS = ("sh", "cp", "cat", "mkdir", "rm", "ls", "echo", "printf", "sleep", "mv", "test")
# Debian packages whose files go into the images (the stack installs them on the host).
PACKAGES = ("git", "redis-server", "busybox-static")


def _host(tool: str, package: str) -> Path:
    found = shutil.which(tool) or (Path("/usr/lib/git-core") / tool if tool.startswith("git-") else None)
    if not found or not Path(found).exists():
        raise ImageError(f"{tool} is not on this host: apt-get install -y {package}")
    return Path(found)


def _busybox() -> dict[str, Entry]:
    busybox = _host("busybox", "busybox-static")
    if library_closure(busybox):
        raise ImageError(f"a static busybox is needed (found {busybox}): apt-get install -y busybox-static")
    return {"/bin/busybox": File(busybox.resolve(), 0o755),
            **{f"/bin/{applet}": Symlink("busybox") for applet in BUSYBOX_APPLETS}}


def _git() -> dict[str, Entry]:
    """git, with the exec-path link git uses to run its own builtins as subprocesses."""
    return {**binary_with_libraries(_host("git", "git"), "/usr/bin/git"),
            "/usr/lib/git-core/git": Symlink("/usr/bin/git")}


def _users(name: str, uid: int) -> dict[str, Entry]:
    return {
        "/etc/passwd": Data(f"root:x:0:0:root:/root:/bin/sh\n{name}:x:{uid}:{uid}::/home/{name}:/bin/sh\n".encode()),
        "/etc/group": Data(f"root:x:0:\n{name}:x:{uid}:\n".encode()),
        "/etc/nsswitch.conf": Data(b"passwd: files\ngroup: files\nhosts: files dns\n"),
        "/tmp": Dir(0o1777),
        f"/home/{name}": Dir(0o777),
    }


def argocd_spec() -> ImageSpec:
    binary = programs()[PROGRAM].binary("argocd")
    if not binary.exists():
        raise ImageError(f"{binary} is not built: python -m conformance.stack --tiers=gitops builds it")
    contents: dict[str, Entry] = {"/usr/local/bin/argocd": File(binary, 0o755)}
    contents.update({f"/usr/local/bin/{role}": Symlink("argocd") for role in ROLES})
    contents.update(_git() | _busybox() | _users("argocd", ARGOCD_UID))
    return ImageSpec(name=ARGOCD_IMAGE, contents=contents, config=ImageConfig(
        env=(DEFAULT_PATH_ENV, "HOME=/home/argocd", "USER=argocd", "ARGOCD_GPG_ENABLED=false"),
        user=f"{ARGOCD_UID}:{ARGOCD_UID}", working_dir="/home/argocd"))


def redis_spec() -> ImageSpec:
    contents = binary_with_libraries(_host("redis-server", "redis-server"), "/usr/bin/redis-server")
    contents.update(_users("redis", ARGOCD_UID))
    return ImageSpec(name=REDIS_IMAGE, contents=contents, config=ImageConfig(
        entrypoint=("/usr/bin/redis-server",), user=f"{ARGOCD_UID}:{ARGOCD_UID}", working_dir="/tmp"))


def git_spec() -> ImageSpec:
    """git daemon serving /srv/git, plus a shell to commit into its repositories."""
    contents = _git() | _busybox() | _users("git", NOBODY)
    contents.update(binary_with_libraries(_host("git-daemon", "git"), "/usr/lib/git-core/git-daemon"))
    return ImageSpec(name=GIT_IMAGE, contents=contents, config=ImageConfig(
        env=(DEFAULT_PATH_ENV, "HOME=/tmp"), user=f"{NOBODY}:{NOBODY}", working_dir="/tmp",
        entrypoint=("/usr/lib/git-core/git-daemon",)))


def build_argocd() -> Path:
    return build_image(argocd_spec())


def build_redis() -> Path:
    return build_image(redis_spec())


def build_git() -> Path:
    return build_image(git_spec())


BUILDERS = {"argocd": build_argocd, "argocd-redis": build_redis, "git-server": build_git}

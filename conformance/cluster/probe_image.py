"""Compile the programs the local cluster needs in its own images and pack those images.

Two images come from here. ``registry.k8s.io/pause`` is the sandbox image every pod needs: its
C source is read from the k8s.io/kubernetes Go module in the module cache (never copied into
this repository) and compiled statically as the upstream Makefile does. The project's probe
image carries three resolvers, because applications resolve names through glibc, musl or Go
and each treats search lists and ndots its own way: Debian's glibc tools (getent, dig) with
their library closure, the musl program in images/resolve-musl and the Go program in
images/resolve-go, plus a static busybox for shell, nc and wget. It runs as nobody, so it is
admitted under Pod Security ``restricted``.

Every compiled program and every archive is cached under the cache root, keyed by a digest
of its inputs (sources, flags, toolchain), so a warm build only hashes files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

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
    cache_root,
    file_sha256,
    library_closure,
    run_tool,
    split_reference,
)

# Subprocess limits in seconds, each sized for the slowest honest case on a 2-core machine.
TIMEOUTS: dict[str, float] = {
    # Fetching k8s.io/kubernetes (about 45 MiB zipped) through the module proxy when it is not cached.
    "go-mod-download": 1800,
    # One small C file, compiled and statically linked.
    "cc": 120,
    # A dependency-free Go program with a cold standard-library build cache.
    "go-build": 600,
    # Asking a tool for its version.
    "version": 30,
}

KUBERNETES_MODULE = "k8s.io/kubernetes"
PROBE_IMAGE = "localhost/platform-conformance/probe:0.1.0"
REPO = Path(__file__).resolve().parents[2]
IMAGES_SOURCE = REPO / "images"
# The pinned stack list names the pause image (an entry with ``build: pause``) and the
# k8s.io/kubernetes module its source comes from; the sandbox image is configured from there too.
STACK_LIST = REPO / "manifests" / "stack.yaml"

# The uid and gid the probe image runs as: Debian's nobody and nogroup.
NOBODY = 65534

# Host tools packed into the probe image, with the Debian package that ships each.
HOST_TOOLS = {"getent": "libc-bin", "dig": "bind9-dnsutils"}
BUSYBOX_PACKAGE = "busybox-static"
BUSYBOX_APPLETS = (
    "sh", "nc", "wget", "sleep", "cat", "echo", "env", "ls", "id", "hostname", "timeout",
    "nslookup", "printf", "true", "false", "grep", "head", "tail", "wc", "date",
)
MUSL_LIBC_CANDIDATES = (Path("/usr/lib/x86_64-linux-musl/libc.a"), Path("/usr/lib/musl/lib/libc.a"))

PROBE_FILES = {
    "/etc/passwd": Data(b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    "/etc/group": Data(b"root:x:0:\nnogroup:x:65534:\n"),
    # glibc reads this for getent; Go reads it too. "dns" after "files" is what Debian ships.
    "/etc/nsswitch.conf": Data(b"passwd: files\ngroup: files\nhosts: files dns\n"),
    "/tmp": Dir(0o1777),
}
# Sleep until told to stop: a shell as PID 1 ignores SIGTERM unless it traps it, which would
# make every probe pod wait out its whole grace period on deletion.
PROBE_CMD = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait")


def programs_dir(cache: Path | None = None) -> Path:
    """Where compiled programs are kept: ``<cache root>/images/programs/<name>-<inputs digest>/<name>``."""
    return (cache or cache_root()) / "images" / "programs"


@dataclasses.dataclass(frozen=True)
class PausePin:
    """Which pause image to build and from which k8s.io/kubernetes module."""

    name: str  # registry.k8s.io/pause:<tag>
    kubernetes_version: str
    kubernetes_sum: str | None  # the module's go.sum hash (h1:...), checked when given


def pause_pin() -> PausePin:
    """The pause image and Kubernetes module pinned in manifests/stack.yaml."""
    import yaml  # a project dependency; imported here so the archive code stays stdlib-only

    try:
        stack = yaml.safe_load(STACK_LIST.read_text())
        kubernetes = stack["programs"]["kubernetes"]
        name = next(image["name"] for image in stack["images"] if image.get("build") == "pause")
        return PausePin(name, kubernetes["version"], kubernetes.get("sum"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as error:
        raise ImageError(
            f"{STACK_LIST} must pin programs.kubernetes.version and an images entry with build: pause ({error!r})"
        ) from error


def kubernetes_module_dir(version: str, expected_sum: str | None = None) -> Path:
    """The k8s.io/kubernetes module in the Go module cache, downloaded through the proxy if missing."""
    with tempfile.TemporaryDirectory(prefix="pcf-gomod-") as scratch:
        # A scratch directory keeps any go.mod or go.work around the caller out of the lookup.
        result = run_tool(
            ["go", "mod", "download", "-json", f"{KUBERNETES_MODULE}@{version}"],
            timeout=TIMEOUTS["go-mod-download"], what=f"downloading {KUBERNETES_MODULE}@{version}",
            env=_go_env(GOFLAGS="-mod=mod"), cwd=Path(scratch), check=False,
        )
    try:
        info = json.loads(result.stdout)
    except ValueError:
        info = {}
    if result.returncode != 0 or info.get("Error") or not info.get("Dir"):
        raise ImageError(
            f"go mod download {KUBERNETES_MODULE}@{version} failed (exit {result.returncode}): "
            f"{info.get('Error') or result.stderr.strip()[-2000:]}"
        )
    if expected_sum and info.get("Sum") != expected_sum:
        raise ImageError(f"{KUBERNETES_MODULE}@{version} has go.sum hash {info.get('Sum')}, the stack list pins {expected_sum}")
    return Path(info["Dir"])


def compile_pause(pin: PausePin, cache: Path | None = None) -> Path:
    """The static pause binary, compiled from the pinned module's build/pause/linux/pause.c."""
    _, tag = split_reference(pin.name)
    source = kubernetes_module_dir(pin.kubernetes_version, pin.kubernetes_sum) / "build" / "pause" / "linux" / "pause.c"
    if not source.is_file():
        raise ImageError(f"{KUBERNETES_MODULE}@{pin.kubernetes_version} has no {source}")
    # The upstream Makefile's CFLAGS; its VERSION is v$(TAG)-$(REV), REV being the module version here.
    flags = ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}-{pin.kubernetes_version}"]
    return _compile_c("pause", "gcc", source, flags, _glibc_static_libc(), cache)


def compile_resolve_musl(cache: Path | None = None) -> Path:
    """images/resolve-musl, statically linked against musl."""
    source = _project_source("resolve-musl") / "resolve.c"
    libc = next((p for p in MUSL_LIBC_CANDIDATES if p.is_file()), None)
    if libc is None or shutil.which("musl-gcc") is None:
        raise ImageError("musl-gcc and musl's libc.a are needed: apt-get install -y musl-tools")
    flags = ["-Os", "-Wall", "-Wextra", "-Werror", "-static"]
    return _compile_c("resolve-musl", "musl-gcc", source, flags, libc, cache)


def compile_resolve_go(cache: Path | None = None) -> Path:
    """images/resolve-go, built with CGO_ENABLED=0 so only Go's own resolver is in it."""
    source_dir = _project_source("resolve-go")
    sources = sorted(p for p in source_dir.iterdir() if p.suffix == ".go" or p.name in ("go.mod", "go.sum"))
    go_version = run_tool(["go", "env", "GOVERSION"], timeout=TIMEOUTS["version"], what="go version", env=_go_env()).stdout.strip()
    flags = ["-trimpath", "-buildvcs=false", "-ldflags=-s -w"]
    key = [go_version, flags, [[p.name, file_sha256(p)] for p in sources]]

    def build(out: Path) -> None:
        run_tool(
            ["go", "build", *flags, "-o", str(out), "."],
            timeout=TIMEOUTS["go-build"], what="building resolve-go",
            env=_go_env(CGO_ENABLED="0", GOOS="linux", GOARCH="amd64"), cwd=source_dir,
        )

    return _cached_program("resolve-go", key, build, cache)


def build_pause_image(pin: PausePin | None = None, aliases: Sequence[str] = (), cache: Path | None = None) -> Path:
    """The pause image archive (default: as pinned in the stack list), shaped like upstream's.

    Upstream's image is /pause alone, entrypoint /pause, user 65535:65535. ``aliases`` adds
    references to the same manifest, for a runtime configured with another pause tag:
    containerd 2.2's default sandbox image is pause:3.10.1, kubeadm 1.36 names 3.10.2 (whose
    only change is the Windows base image).
    """
    pin = pin or pause_pin()
    binary = compile_pause(pin, cache)
    spec = ImageSpec(
        name=pin.name,
        aliases=tuple(aliases),
        contents={"/pause": File(binary, 0o755)},
        config=ImageConfig(entrypoint=("/pause",), user="65535:65535"),
    )
    return build_image(spec, cache)


def probe_image_spec(cache: Path | None = None) -> ImageSpec:
    """What goes into the probe image, with its programs compiled (or taken from the cache)."""
    contents: dict[str, Entry] = dict(PROBE_FILES)
    for tool, package in HOST_TOOLS.items():
        host = shutil.which(tool)
        if host is None:
            raise ImageError(f"{tool} is not on this host: apt-get install -y {package}")
        contents.update(binary_with_libraries(Path(host), f"/usr/bin/{tool}"))

    busybox = shutil.which("busybox")
    if busybox is None or library_closure(Path(busybox)):
        raise ImageError(f"a static busybox is needed (found {busybox}): apt-get install -y {BUSYBOX_PACKAGE}")
    contents["/bin/busybox"] = File(Path(busybox).resolve(), 0o755)
    contents.update({f"/bin/{applet}": Symlink("busybox") for applet in BUSYBOX_APPLETS})

    contents["/usr/local/bin/resolve-musl"] = File(compile_resolve_musl(cache), 0o755)
    contents["/usr/local/bin/resolve-go"] = File(compile_resolve_go(cache), 0o755)
    return ImageSpec(
        name=PROBE_IMAGE,
        contents=contents,
        config=ImageConfig(
            cmd=PROBE_CMD,
            env=(DEFAULT_PATH_ENV,),
            user=f"{NOBODY}:{NOBODY}",
            labels=(("org.opencontainers.image.title", "platform-conformance probe"),),
        ),
    )


def build_probe_image(cache: Path | None = None) -> Path:
    """The probe image archive, ``localhost/platform-conformance/probe:0.1.0``."""
    return build_image(probe_image_spec(cache), cache)


# --- helpers ----------------------------------------------------------------------------


def _project_source(name: str) -> Path:
    path = IMAGES_SOURCE / name
    if not path.is_dir():
        raise ImageError(f"the source of {name} is not at {path}: run from a checkout of the repository")
    return path


def _glibc_static_libc() -> Path:
    result = run_tool(["gcc", "-print-file-name=libc.a"], timeout=TIMEOUTS["version"], what="locating libc.a")
    libc = Path(result.stdout.strip())
    if not libc.is_absolute() or not libc.is_file():
        raise ImageError("gcc finds no static libc.a: apt-get install -y gcc libc6-dev")
    return libc.resolve()


def _compile_c(name: str, compiler: str, source: Path, flags: list[str], libc: Path, cache: Path | None) -> Path:
    if shutil.which(compiler) is None:
        raise ImageError(f"{compiler} is not installed: apt-get install -y {'musl-tools' if 'musl' in compiler else 'gcc libc6-dev'}")
    version = run_tool([compiler, "--version"], timeout=TIMEOUTS["version"], what=f"{compiler} --version").stdout.splitlines()[0]
    key = [compiler, version, flags, file_sha256(source), file_sha256(libc)]

    def build(out: Path) -> None:
        run_tool([compiler, *flags, "-o", str(out), str(source)], timeout=TIMEOUTS["cc"], what=f"compiling {name}")
        run_tool(["strip", str(out)], timeout=TIMEOUTS["cc"], what=f"stripping {name}")

    return _cached_program(name, key, build, cache)


def _cached_program(name: str, key: object, build: Callable[[Path], None], cache: Path | None) -> Path:
    digest = hashlib.sha256(json.dumps([name, key], sort_keys=True).encode()).hexdigest()[:16]
    final_dir = programs_dir(cache) / f"{name}-{digest}"
    binary = final_dir / name
    if binary.is_file():
        return binary
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling directory and renamed, so a killed build never looks like a cached one.
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final_dir.parent))
    try:
        build(scratch / name)
        try:
            scratch.rename(final_dir)
        except OSError:
            if not binary.is_file():  # only a concurrent build finishing first is expected here
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return binary


def _go_env(**overrides: str) -> dict[str, str]:
    # A local toolchain only (no toolchain download), and no workspace or GOFLAGS from the caller.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": ""}
    env.update(overrides)
    return env

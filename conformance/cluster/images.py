"""Build OCI image archives from host files, without a daemon or a registry, and load them.

The local cluster has no registry and no Docker engine, so the images its manifests name by
their upstream references are packed here from files on the host, written as an
``oci-archive`` tar and imported into containerd's ``k8s.io`` namespace, where the CRI
plugin finds them. An archive is a pure function of its inputs (fixed mtimes and owners,
sorted entries, gzip without a timestamp), so a digest of those inputs names a cache file
and an unchanged input never triggers a rebuild.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

# Subprocess limits in seconds, each sized for the slowest honest case on a 2-core machine.
TIMEOUTS: dict[str, float] = {
    # ldd asks the loader to trace a binary's libraries; it reads a few files.
    "ldd": 30,
    # Unpacking the largest archive here (the probe image, ~60 MiB of libraries) into a snapshotter.
    "ctr-import": 300,
    # Listing images is one round trip to containerd's metadata store.
    "ctr-list": 30,
}

# Bumped whenever the archive layout changes, so older cache files are not reused.
FORMAT_VERSION = 1

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

# Every timestamp in an archive; a constant keeps digests stable across builds.
EPOCH = 0
EPOCH_RFC3339 = "1970-01-01T00:00:00Z"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOADER = "/lib64/ld-linux-x86-64.so.2"


class ImageError(RuntimeError):
    """An image could not be built, read or loaded; the message names the step and its output."""


# --- what goes into an image -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class File:
    """A host file copied into the image; ``mode`` defaults to the host file's permission bits."""

    source: Path
    mode: int | None = None


@dataclasses.dataclass(frozen=True)
class Data:
    """A file whose bytes are given directly (configuration files such as /etc/passwd)."""

    content: bytes
    mode: int = 0o644


@dataclasses.dataclass(frozen=True)
class Dir:
    """A directory; parents of other entries are added as 0755 directories without asking."""

    mode: int = 0o755


@dataclasses.dataclass(frozen=True)
class Symlink:
    """A symbolic link, stored with its target exactly as given."""

    target: str


Entry = File | Data | Dir | Symlink


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config (what ``docker inspect`` shows as Config)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (DEFAULT_PATH_ENV,)
    user: str = ""
    working_dir: str = "/"
    labels: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        body: dict = {"Env": list(self.env), "WorkingDir": self.working_dir}
        if self.entrypoint:
            body["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            body["Cmd"] = list(self.cmd)
        if self.user:
            body["User"] = self.user
        if self.labels:
            body["Labels"] = dict(self.labels)
        return body


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One single-layer linux/amd64 image: its references, its files and its config.

    ``name`` is the full upstream reference (``registry.k8s.io/pause:3.10.1``) under which
    the runtime will know the image; ``aliases`` are further references to the same manifest.
    ``contents`` maps in-image absolute paths to entries; a bare ``Path`` means ``File(path)``.
    ``base`` is a root filesystem tar (rootfs.py) whose members come first in the layer; an
    entry of ``contents`` at the same path replaces its member, and device nodes are left out
    (the runtime mounts /dev).
    """

    name: str
    contents: Mapping[str, Entry | Path]
    config: ImageConfig = ImageConfig()
    aliases: tuple[str, ...] = ()
    base: Path | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclasses.dataclass(frozen=True)
class LayerEntry:
    """One member of an image's layer, as read back from an archive."""

    kind: str  # "file", "dir" or "symlink"
    mode: int
    size: int
    target: str | None = None


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
    """What an oci-archive holds, after every digest and size in it was checked."""

    path: Path
    names: tuple[str, ...]
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    config: dict
    entries: Mapping[str, LayerEntry]


# --- references and the cache -----------------------------------------------------------

_REFERENCE = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/:-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$")


def split_reference(name: str) -> tuple[str, str]:
    """Split ``host/path/repo:tag`` into repository and tag; a reference without a tag is refused."""
    match = _REFERENCE.match(name)
    if not match or not match.group("tag") or match.group("repo").endswith("/"):
        raise ImageError(f"image reference {name!r} is not of the form [host/]path/name:tag")
    return match.group("repo"), match.group("tag")


def cache_root() -> Path:
    """The build cache shared by the local cluster harness: ``$PCF_CACHE`` or ~/.cache/platform-conformance."""
    return Path(os.environ.get("PCF_CACHE") or "~/.cache/platform-conformance").expanduser()


def images_dir(cache: Path | None = None) -> Path:
    """Where archives are kept: ``<cache root>/images``."""
    return (cache or cache_root()) / "images"


def inputs_digest(spec: ImageSpec) -> str:
    """Hex sha256 over everything that decides the archive's bytes: names, config and each entry."""
    entries = []
    for path, entry in sorted(_normalise(spec.contents).items()):
        if isinstance(entry, File):
            entries.append([path, "file", _file_mode(entry), file_sha256(entry.source)])
        elif isinstance(entry, Data):
            entries.append([path, "data", entry.mode, hashlib.sha256(entry.content).hexdigest()])
        elif isinstance(entry, Dir):
            entries.append([path, "dir", entry.mode])
        else:
            entries.append([path, "symlink", entry.target])
    document = {
        "format": FORMAT_VERSION,
        "names": list(spec.names),
        **({"base": file_sha256(spec.base)} if spec.base else {}),
        "config": spec.config.to_json(),
        "entries": entries,
    }
    return hashlib.sha256(_canonical_json(document)).hexdigest()


def archive_path(spec: ImageSpec, cache: Path | None = None) -> Path:
    """Where the archive for ``spec`` lives: ``<cache root>/images/<name>-<tag>-<inputs digest>.tar``."""
    repo, tag = split_reference(spec.name)
    short = repo.rsplit("/", 1)[-1]
    return images_dir(cache) / f"{short}-{tag}-{inputs_digest(spec)[:16]}.tar"


def build_image(spec: ImageSpec, cache: Path | None = None) -> Path:
    """Return the cached archive for ``spec``, writing it first only when no archive has these inputs.

    ``cache`` is the cache root (default ``cache_root()``).
    """
    target = archive_path(spec, cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a killed build never leaves a truncated cache file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_oci_archive(spec, tmp)
        tmp.chmod(0o644)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# --- writing an archive -----------------------------------------------------------------


def write_oci_archive(spec: ImageSpec, dest: Path) -> str:
    """Write ``spec`` as an oci-archive tar at ``dest``; return the manifest digest (``sha256:...``)."""
    for name in spec.names:
        split_reference(name)
    entries = _normalise(spec.contents)
    with tempfile.TemporaryDirectory(prefix="pcf-image-") as work:
        layer_tar = Path(work) / "layer.tar"
        layer_gz = Path(work) / "layer.tar.gz"
        _write_layer(entries, layer_tar, spec.base)
        diff_id = "sha256:" + file_sha256(layer_tar)
        _gzip(layer_tar, layer_gz)
        layer_digest = "sha256:" + file_sha256(layer_gz)
        layer_size = layer_gz.stat().st_size
        layer_tar.unlink()

        config = _canonical_json({
            "created": EPOCH_RFC3339,
            "architecture": "amd64",
            "os": "linux",
            "config": spec.config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": EPOCH_RFC3339, "created_by": "platform-conformance images.py"}],
        })
        config_digest = _digest(config)
        manifest = _canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
        })
        manifest_digest = _digest(manifest)
        index = _canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {ANNOTATION_REF_NAME: name, ANNOTATION_CONTAINERD_NAME: name},
                }
                for name in spec.names
            ],
        })

        blobs: dict[str, bytes | Path] = {
            config_digest: config,
            manifest_digest: manifest,
            layer_digest: layer_gz,
        }
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
            _add_dir(out, "blobs")
            _add_dir(out, "blobs/sha256")
            for digest in sorted(blobs):
                _add_blob(out, "blobs/sha256/" + digest.split(":", 1)[1], blobs[digest])
            _add_blob(out, "index.json", index)
            _add_blob(out, "oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def _normalise(contents: Mapping[str, Entry | Path]) -> dict[str, Entry]:
    """Relative POSIX paths mapped to entries, with every missing parent directory added."""
    entries: dict[str, Entry] = {}
    for raw, entry in contents.items():
        path = PurePosixPath("/", raw)
        if ".." in path.parts or path == PurePosixPath("/"):
            raise ImageError(f"image path {raw!r} must be absolute and below /, without '..'")
        if isinstance(entry, Path):
            entry = File(entry)
        if not isinstance(entry, (File, Data, Dir, Symlink)):
            raise ImageError(f"image path {raw!r}: {entry!r} is not a File, Data, Dir or Symlink")
        entries[str(path.relative_to("/"))] = entry
    for path in list(entries):
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                existing = entries.setdefault(str(parent), Dir())
                if not isinstance(existing, Dir):
                    raise ImageError(f"image path /{parent} is both a parent directory and a {type(existing).__name__}")
    return entries


def _file_mode(entry: File) -> int:
    if entry.mode is not None:
        return entry.mode
    try:
        return entry.source.stat().st_mode & 0o7777
    except OSError as error:
        raise ImageError(f"cannot read image input {entry.source}: {error}") from error


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _copy_base(base: Path, layer: tarfile.TarFile, entries: Mapping[str, Entry]) -> set[str]:
    """The root filesystem's members (owners and modes kept, times fixed), but for device
    nodes and the files ``entries`` supplies instead; returns the names written. A directory
    of both keeps the base's member."""
    written: set[str] = set()
    try:
        with tarfile.open(base, "r:*") as rootfs:
            for member in rootfs:
                name = _member_name(member.name)
                if not name or member.ischr() or member.isblk() or member.isfifo():
                    continue
                ours = entries.get(name)
                if isinstance(ours, Dir) and member.issym():
                    raise ImageError(f"/{name} is a symlink in {base} ({member.linkname}); place files "
                                     "at its target instead")
                if ours is not None and not (isinstance(ours, Dir) and member.isdir()):
                    continue
                member.name, member.mtime = name, EPOCH
                member.pax_headers = {}
                if member.islnk():
                    member.linkname = _member_name(member.linkname)
                layer.addfile(member, rootfs.extractfile(member) if member.isfile() else None)
                written.add(name)
    except (tarfile.TarError, OSError) as error:
        raise ImageError(f"cannot read the root filesystem {base}: {error}") from error
    return written


def _write_layer(entries: Mapping[str, Entry], dest: Path, base: Path | None = None) -> None:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as layer:
        from_base = _copy_base(base, layer, entries) if base is not None else set()
        for path in sorted(entries):
            entry = entries[path]
            if path in from_base:
                continue
            if isinstance(entry, Dir):
                layer.addfile(_tarinfo(path, tarfile.DIRTYPE, entry.mode))
            elif isinstance(entry, Symlink):
                info = _tarinfo(path, tarfile.SYMTYPE, 0o777)
                info.linkname = entry.target
                layer.addfile(info)
            elif isinstance(entry, Data):
                layer.addfile(_tarinfo(path, tarfile.REGTYPE, entry.mode, len(entry.content)), io.BytesIO(entry.content))
            else:
                mode = _file_mode(entry)
                with open(entry.source, "rb") as source:
                    size = os.fstat(source.fileno()).st_size
                    layer.addfile(_tarinfo(path, tarfile.REGTYPE, mode, size), source)


def _gzip(source: Path, dest: Path) -> None:
    # mtime=0 and an empty file name keep the gzip header free of anything that varies.
    with (
        open(source, "rb") as src,
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out,
    ):
        shutil.copyfileobj(src, out, 1 << 20)


def _add_dir(out: tarfile.TarFile, name: str) -> None:
    out.addfile(_tarinfo(name, tarfile.DIRTYPE, 0o755))


def _add_blob(out: tarfile.TarFile, name: str, blob: bytes | Path) -> None:
    if isinstance(blob, bytes):
        out.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, len(blob)), io.BytesIO(blob))
    else:
        with open(blob, "rb") as source:
            out.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, blob.stat().st_size), source)


def _canonical_json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as error:
        raise ImageError(f"cannot read image input {path}: {error}") from error
    return digest.hexdigest()


# --- reading an archive back ------------------------------------------------------------


def read_oci_archive(path: Path) -> ArchiveInfo:
    """Read an oci-archive, checking that index -> manifest -> config and layers agree in digest and size."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:") as archive:
            members = {_member_name(m.name): m for m in archive.getmembers()}

            def blob(name: str) -> bytes:
                member = members.get(name)
                if member is None or not member.isfile():
                    raise ImageError(f"{path}: no {name} in the archive (it has {sorted(members)})")
                return archive.extractfile(member).read()

            def checked(descriptor: dict, media_type: str) -> bytes:
                digest = descriptor.get("digest", "")
                if descriptor.get("mediaType") != media_type:
                    raise ImageError(f"{path}: {digest} has media type {descriptor.get('mediaType')!r}, expected {media_type!r}")
                data = blob("blobs/sha256/" + digest.removeprefix("sha256:"))
                if _digest(data) != digest or len(data) != descriptor.get("size"):
                    raise ImageError(
                        f"{path}: blob {digest} (size {descriptor.get('size')}) holds "
                        f"{_digest(data)} (size {len(data)})"
                    )
                return data

            layout = json.loads(blob("oci-layout"))
            if layout.get("imageLayoutVersion") != "1.0.0":
                raise ImageError(f"{path}: oci-layout is {layout}, expected imageLayoutVersion 1.0.0")
            index = json.loads(blob("index.json"))
            descriptors = index.get("manifests") or []
            if index.get("schemaVersion") != 2 or not descriptors:
                raise ImageError(f"{path}: index.json is not a schemaVersion 2 index with manifests: {index}")
            digests = {d.get("digest") for d in descriptors}
            if len(digests) != 1:
                raise ImageError(f"{path}: index.json names {len(digests)} manifests; this reader handles one image")
            names = tuple(d.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME, "") for d in descriptors)
            manifest = json.loads(checked(descriptors[0], MEDIA_MANIFEST))
            config = json.loads(checked(manifest["config"], MEDIA_CONFIG))
            layers = manifest.get("layers") or []
            diff_ids = tuple(config.get("rootfs", {}).get("diff_ids") or [])
            if len(layers) != len(diff_ids):
                raise ImageError(f"{path}: {len(layers)} layers but {len(diff_ids)} diff_ids in the config")
            entries: dict[str, LayerEntry] = {}
            for layer, diff_id in zip(layers, diff_ids):
                raw = gzip.decompress(checked(layer, MEDIA_LAYER_GZIP))
                if _digest(raw) != diff_id:
                    raise ImageError(f"{path}: layer {layer['digest']} uncompresses to {_digest(raw)}, config says {diff_id}")
                entries.update(_layer_entries(raw))
    except (tarfile.TarError, OSError, ValueError, KeyError) as error:
        raise ImageError(f"{path}: not a readable oci-archive: {error}") from error
    return ArchiveInfo(
        path=path,
        names=names,
        manifest_digest=descriptors[0]["digest"],
        config_digest=manifest["config"]["digest"],
        layer_digests=tuple(layer["digest"] for layer in layers),
        diff_ids=diff_ids,
        config=config,
        entries=entries,
    )


def _layer_entries(raw: bytes) -> dict[str, LayerEntry]:
    entries = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as layer:
        for member in layer.getmembers():
            if member.isdir():
                kind, target = "dir", None
            elif member.issym():
                kind, target = "symlink", member.linkname
            else:
                kind, target = "file", None
            entries["/" + _member_name(member.name)] = LayerEntry(kind, member.mode, member.size, target)
    return entries


def _member_name(name: str) -> str:
    return name.removeprefix("./").strip("/")


# --- packing Debian binaries ------------------------------------------------------------

_LDD_LINE = re.compile(r"^\s*(?:(?P<soname>\S+)\s+=>\s+)?(?P<path>\S+)?\s*\(0x[0-9a-f]+\)\s*$")


def library_closure(binary: Path) -> dict[str, Path]:
    """The shared libraries a host binary loads, loader included: in-image path -> host file.

    In-image paths are the ones the loader resolved on the host (``/lib/x86_64-linux-gnu/...``,
    which Debian's loader also searches without an ld.so.cache); the host side is the real file
    behind any symlink. A static binary has an empty closure; a missing library is an error.
    """
    result = run_tool(["ldd", str(binary)], timeout=TIMEOUTS["ldd"], what=f"ldd {binary}", check=False)
    text = result.stdout + result.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return {}
    if result.returncode != 0:
        raise ImageError(f"ldd {binary} exited {result.returncode}: {text.strip()}")
    closure: dict[str, Path] = {}
    for line in result.stdout.splitlines():
        if "=> not found" in line:
            raise ImageError(f"{binary} needs a library the host lacks: {line.strip()}")
        match = _LDD_LINE.match(line)
        if not match or not match.group("path") or not match.group("path").startswith("/"):
            continue  # the vDSO has no file
        in_image = match.group("path")
        closure[in_image] = Path(in_image).resolve(strict=True)
    if LOADER not in closure:
        raise ImageError(f"ldd {binary} named no loader {LOADER}: {result.stdout.strip()}")
    return closure


def binary_with_libraries(binary: Path, in_image: str) -> dict[str, Entry]:
    """Contents for one host binary at ``in_image`` plus its library closure."""
    contents: dict[str, Entry] = {in_image: File(Path(binary).resolve(strict=True))}
    contents.update({path: File(host) for path, host in library_closure(binary).items()})
    return contents


# --- loading into containerd ------------------------------------------------------------


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run one build or runtime tool with a limit; failures name the step, the command and its output."""
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False,
            env=dict(env) if env is not None else None, cwd=cwd,
        )
    except FileNotFoundError as error:
        raise ImageError(f"{what}: {argv[0]} is not installed ({error})") from error
    except subprocess.TimeoutExpired as error:
        partial = (error.stderr or error.stdout or b"")
        partial = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        raise ImageError(f"{what}: {' '.join(argv)} did not finish within {timeout:g} s; last output: {partial[-2000:]!r}") from error
    if check and result.returncode != 0:
        raise ImageError(
            f"{what}: {' '.join(argv)} exited {result.returncode}: {(result.stderr or result.stdout)[-4000:].strip()}"
        )
    return result


def _ctr(ctr_binary: Path | str, address: str) -> list[str]:
    return [str(ctr_binary), "--address", address, "--namespace", "k8s.io"]


def import_image(
    archive: Path,
    ctr_binary: Path | str,
    address: str,
    *,
    snapshotter: str | None = None,
    timeout: float = TIMEOUTS["ctr-import"],
) -> tuple[str, ...]:
    """Load an oci-archive into containerd's ``k8s.io`` namespace; return the references it now holds.

    The CRI plugin reads that namespace, so pods naming these references with
    ``imagePullPolicy: IfNotPresent`` start without a registry.
    """
    info = read_oci_archive(archive)
    argv = [*_ctr(ctr_binary, address), "images", "import", "--platform", "linux/amd64"]
    if snapshotter:
        # containerd's transfer service unpacks only for the snapshotters in its unpack_config
        # (overlayfs by default); a local import unpacks for the one named here.
        argv += ["--local", "--snapshotter", snapshotter]
    run_tool([*argv, str(archive)], timeout=timeout, what=f"importing {', '.join(info.names)}")
    listing = list_images(ctr_binary, address)
    missing = [name for name in info.names if listing.get(name) != info.manifest_digest]
    if missing:
        raise ImageError(f"ctr import of {archive} finished, but containerd does not list {missing} at {info.manifest_digest}")
    return info.names


def image_present(
    name: str,
    ctr_binary: Path | str,
    address: str,
    *,
    digest: str | None = None,
    timeout: float = TIMEOUTS["ctr-list"],
) -> bool:
    """Whether containerd's ``k8s.io`` namespace holds ``name`` (and, if given, at that manifest digest)."""
    listing = list_images(ctr_binary, address, timeout=timeout)
    return name in listing and (digest is None or listing[name] == digest)


def list_images(ctr_binary: Path | str, address: str, *, timeout: float = TIMEOUTS["ctr-list"]) -> dict[str, str]:
    """The references in containerd's ``k8s.io`` namespace, each mapped to its target digest."""
    result = run_tool([*_ctr(ctr_binary, address), "images", "list"], timeout=timeout, what="listing containerd images")
    return parse_image_list(result.stdout)


def parse_image_list(listing: str) -> dict[str, str]:
    """`ctr images list` output as reference -> target digest."""
    images = {}
    for line in listing.splitlines()[1:]:
        fields = line.split()
        # REF TYPE DIGEST SIZE PLATFORMS LABELS: the digest is the first sha256 field after the reference.
        digest = next((f for f in fields[1:] if f.startswith("sha256:")), None)
        if fields and digest:
            images[fields[0]] = digest
    return images

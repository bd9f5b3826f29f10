"""The stack's images: built from the pinned programs (or the project's own sources), tagged
with their upstream names, and loaded into the node's runtime."""
from __future__ import annotations

import importlib
from pathlib import Path

from conformance.cluster import paths
from conformance.cluster.build import Program, load_stack
from conformance.cluster.images import File, ImageConfig, ImageSpec, build_image, image_present, import_image, read_oci_archive


def _tag(spec: dict, progs: dict[str, Program]) -> str:
    if "tag_from" not in spec:
        return spec["name"]
    program, rel = spec["tag_from"].split(":", 1)
    return f"{spec['name']}:{(progs[program].source_dir() / rel).read_text().strip()}"


def _builder(kind: str):
    # The project's own images have builders of their own (C and Go sources under images/).
    for module in ("conformance.cluster.probe_image", "conformance.cluster.images"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, f"build_{kind}_image"):
            return getattr(mod, f"build_{kind}_image")
    raise LookupError(f"no builder for the {kind!r} image")


def build_all(progs: dict[str, Program], log=print) -> list[Path]:
    archives = []
    for spec in load_stack()["images"]:
        if "build" in spec:
            archives.append(_builder(spec["build"])())
            continue
        program, binary = spec["program"].split("/", 1)
        image = ImageSpec(
            name=_tag(spec, progs),
            contents={f"/{binary}": File(progs[program].binary(binary))},
            config=ImageConfig(entrypoint=tuple(spec["entrypoint"])),
        )
        archives.append(build_image(image))
    log(f"{len(archives)} images ready under {paths.CACHE / 'images'}")
    return archives


def load_all(progs: dict[str, Program], archives: list[Path], log=print) -> None:
    ctr = progs["containerd"].binary("ctr")
    address = str(paths.CONTAINERD_SOCK)
    for archive in archives:
        info = read_oci_archive(archive)
        if all(image_present(n, ctr, address, digest=info.manifest_digest) for n in info.names):
            continue
        import_image(archive, ctr, address)
        log(f"loaded {', '.join(info.names)}")

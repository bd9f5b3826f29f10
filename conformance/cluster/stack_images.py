"""The stack's images: built from the pinned programs (or the project's own sources), tagged
with their upstream names, and loaded into the node's runtime."""
from __future__ import annotations

from pathlib import Path

from conformance.cluster import argocd_images, crio, e2e_images, kind_images, paths, probe_image
from conformance.cluster.build import Program, load_stack
from conformance.cluster.images import (File, Symlink, ImageConfig, ImageSpec, binary_with_libraries, build_image,
                                        import_image, list_images, read_oci_archive, run_tool)


# The project's own images, built from C and Go sources (images/) and the pause source upstream.
BUILDERS = {"pause": probe_image.build_pause_image, "probe": probe_image.build_probe_image,
            **argocd_images.BUILDERS, **kind_images.BUILDERS}
# Debian packages a builder takes files from, installed before the images of a tier are built.
BUILDER_PACKAGES = {**{name: {p: p for p in argocd_images.PACKAGES} for name in argocd_images.BUILDERS},
                    **{name: {p: p for p in kind_images.PACKAGES} for name in kind_images.BUILDERS},
                    **{name: e2e_images.PACKAGES for name in e2e_images.BUILDERS}}


def packages(tiers: tuple[str, ...]) -> dict[str, str]:
    """What the images of `tiers` need installed on the host, as host.ensure_packages takes it."""
    return {command: package for spec in specs(tiers)
            for command, package in BUILDER_PACKAGES.get(spec.get("build"), {}).items()}


def _tag(spec: dict, progs: dict[str, Program]) -> str:
    if "tag_from" not in spec:
        return spec["name"]
    program, rel = spec["tag_from"].split(":", 1)
    return f"{spec['name']}:{(progs[program].source_dir() / rel).read_text().strip()}"


def build_one(spec: dict, progs: dict[str, Program]) -> Path:
    """The archive of one entry of the stack list's images (its program must be built).

    `path` places the binary elsewhere than at the root, `links` adds names that point at it
    (one binary serving several roles by its name), and `libraries: true` packs the shared
    libraries a dynamically linked binary loads."""
    if spec.get("build") in e2e_images.BUILDERS:
        return e2e_images.BUILDERS[spec["build"]](_tag(spec, progs), progs)
    if "build" in spec:
        return BUILDERS[spec["build"]]()
    program, binary = spec["program"].split("/", 1)
    where = spec.get("path", f"/{binary}")
    source = progs[program].binary(binary)
    contents = binary_with_libraries(source, where) if spec.get("libraries") else {where: File(source)}
    image = ImageSpec(
        name=_tag(spec, progs),
        contents={**contents, **{link: Symlink(where) for link in spec.get("links", ())}},
        config=ImageConfig(entrypoint=tuple(spec["entrypoint"]), user=str(spec.get("user", ""))),
    )
    return build_image(image)


def specs(tiers: tuple[str, ...] = ("core",)) -> list[dict]:
    """The stack list's images of these tiers."""
    return [spec for spec in load_stack()["images"] if spec.get("tier", "core") in tiers]


def build_all(progs: dict[str, Program], log=print, tiers: tuple[str, ...] = ("core",)) -> list[Path]:
    archives = [build_one(spec, progs) for spec in specs(tiers)]
    log(f"{len(archives)} images of tier {', '.join(tiers)} ready under {paths.CACHE / 'images'}")
    return archives


def held(progs: dict[str, Program], names) -> dict[str, str]:
    """Which of `names` the node's runtime holds, each with its manifest digest; one view of
    both runtimes (containerd's image list, or CRI-O's containers-storage)."""
    if paths.runtime() == "cri-o":
        return {name: digest for name in names if (digest := crio.held_digest(name))}
    listed = list_images(progs["containerd"].binary("ctr"), str(paths.CONTAINERD_SOCK))
    return {name: listed[name] for name in names if name in listed}


def remove(progs: dict[str, Program], name: str) -> None:
    """Make the node's runtime forget the image `name`."""
    if paths.runtime() == "cri-o":
        crio.remove(progs["cri-tools"].binary("crictl"), name)
        return
    run_tool([str(progs["containerd"].binary("ctr")), "--address", str(paths.CONTAINERD_SOCK), "--namespace",
              "k8s.io", "images", "rm", name], timeout=60, what=f"removing {name}")


def load_all(progs: dict[str, Program], archives: list[Path], log=print) -> None:
    """Import each archive whose names the node's runtime does not already hold at the same
    digest: one loader for both runtimes (containerd's ctr, or skopeo into CRI-O's storage)."""
    infos = {archive: read_oci_archive(archive) for archive in archives}
    have = held(progs, [name for info in infos.values() for name in info.names])  # one look for all
    for archive, info in infos.items():
        lacking = tuple(n for n in info.names if have.get(n) != info.manifest_digest)
        if not lacking:
            continue
        if paths.runtime() == "cri-o":
            crio.load(archive, lacking)
        else:
            import_image(archive, progs["containerd"].binary("ctr"), str(paths.CONTAINERD_SOCK))
        log(f"loaded {', '.join(lacking)}")

"""The images a run pulls, by their upstream names and by the names a profile's mirror gives them.

Read from the probe manifests themselves (every container of every document in
manifests/probes), so an image a new manifest brings in is listed, published and mirrored
without anyone keeping a second list. Nothing here touches a cluster.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from conformance.probes import workloads
from conformance.profile import Images

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class MirroredImage:
    upstream: str  # the name the manifests carry
    pulled: str  # the name the cluster pulls under this profile (behind its registry_prefix)


def _images_in(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                found |= {c["image"] for c in value if isinstance(c, dict) and c.get("image")}
            else:
                found |= _images_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= _images_in(item)
    return found


def workload_images() -> tuple[str, ...]:
    """Every image the suite's own workloads use, by upstream name, sorted."""
    found: set[str] = set()
    for path in sorted(workloads.MANIFESTS.glob("*.yaml")):
        # Placeholders other than images only shape names and labels: any value will do.
        others = {key: "x" for key in string.Template(path.read_text()).get_identifiers()
                  if not key.endswith("_IMAGE")}
        found |= _images_in(workloads.render(path.stem, None, **others))
    return tuple(sorted(found))


def mirrored(images: Images, referee: bool = False) -> tuple[MirroredImage, ...]:
    """The workload images with the names `images` (a profile's mirror settings) pulls them by;
    with `referee`, then those upstream's e2e referee pulls beside them."""
    names = list(workload_images())
    if referee:
        names += [n for n in referee_images() if n not in names]
    return tuple(MirroredImage(name, images.image(name)) for name in names)


def referee_images() -> tuple[str, ...]:
    """The images upstream's e2e referee needs for the specs it runs (conformance.referee): the
    stack list's upstream test images (built by an `e2e-` builder), under manifest.go's tags."""
    from conformance.cluster.build import load_stack
    from conformance.cluster.images import split_reference

    workload = {split_reference(name)[0]: name for name in workload_images()}
    return tuple(sorted(workload[spec["name"]] if "tag_from" in spec else spec["name"]
                        for spec in load_stack()["images"] if spec.get("build", "").startswith("e2e-")))


def listing(profile_name: str, images: Images, referee: bool = False) -> str:
    """The table `--list-images` prints: one `upstream<TAB>pulled-as` line per image; with
    `referee`, also those upstream's e2e pulls (the profile allows it to run)."""
    prefix = images.registry_prefix or "none: images are pulled by their upstream names"
    lines = [f"# images a run of profile {profile_name!r} pulls (registry_prefix: {prefix})",
             "# upstream\tpulled as"]
    workload = mirrored(images)
    lines += [f"{m.upstream}\t{m.pulled}" for m in workload]
    if referee:
        lines.append("# and upstream's e2e referee (nox -s upstream-e2e; KUBE_TEST_REPO_LIST points it at the prefix)")
        lines += [f"{m.upstream}\t{m.pulled}" for m in mirrored(images, referee=True)[len(workload):]]
    local_only = [m.pulled for m in workload if m.pulled.startswith("localhost/")]
    if local_only:
        lines.append(f"# no registry serves {', '.join(local_only)}: publish the images with "
                     "`nox -s publish-images -- --registry=REGISTRY/PREFIX` and set images.registry_prefix")
    return "\n".join(lines)

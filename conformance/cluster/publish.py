"""Publish the images the suite's workloads pull to a registry the user names.

`localhost/platform-conformance/probe` exists nowhere but in the archives this harness writes,
so a cluster that pulls (every cluster but the local one) needs it in a registry of its own.
Each image the workloads use (conformance.mirror) is taken from the archive the harness builds
for it (probe_image.py, stack_images.py: OCI archives written without Docker) and copied by
skopeo from `oci-archive:` to `docker://`, under the name the profile's
`images.registry_prefix` gives it. An image the harness does not build is copied from its
upstream registry. Credentials come from skopeo's usual auth file (or --authfile).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from conformance import mirror
from conformance.cluster import build, host, stack_images
from conformance.cluster.errors import HarnessError
from conformance.cluster.images import ImageError, read_oci_archive, run_tool, split_reference
from conformance.profile import Images

# One image's copy: the probe image is about 60 MiB, and a remote registry may be slow.
COPY_TIMEOUT_S = 900


@dataclass(frozen=True)
class Published:
    upstream: str
    pushed: str
    digest: str
    seconds: float


def check_registry(registry: str) -> str:
    """`REGISTRY[/PREFIX]` as a registry_prefix, or a HarnessError naming the fix."""
    value = registry.strip().rstrip("/")
    try:
        if not value or "://" in value:
            raise ImageError("no host, or a scheme")
        split_reference(Images(registry_prefix=value).image("x/y:1"))
    except ImageError:
        raise HarnessError(f"--registry {registry!r} is not a registry host with an optional path",
                           fix="give it as HOST[:PORT][/PREFIX] in lower case, without a scheme, "
                               "e.g. --registry=registry.example.org:5000/platform-conformance") from None
    return value


def _stack_entry(upstream: str) -> dict | None:
    repo, _ = split_reference(upstream)
    for spec in build.load_stack()["images"]:
        if spec["name"] == upstream or ("tag_from" in spec and spec["name"] == repo):
            return spec
    return None


def source(upstream: str, log=print) -> str:
    """skopeo's source for one image: the harness's archive of it, built if missing, or upstream."""
    spec = _stack_entry(upstream)
    if spec is None:
        return f"docker://{upstream}"
    log(f"  building {upstream} (cached after the first time)")
    needs = [spec["program"].split("/", 1)[0]] if "program" in spec else list(spec.get("programs", ()))
    progs = build.build_all(needs, log=log) if needs else {}
    try:
        archive = stack_images.build_one(spec, progs)
        names = read_oci_archive(archive).names
    except ImageError as exc:
        raise HarnessError(f"building {upstream} failed: {exc}", fix="see the message; "
                           "`python -m conformance.cluster packages` installs the build tools") from None
    if upstream not in names:
        raise HarnessError(f"the stack builds {', '.join(names)}, but the workloads pull {upstream}",
                           fix="make the tag in conformance/probes/workloads.py match manifests/stack.yaml")
    return f"oci-archive:{archive}:{upstream}"


def publish(registry: str, *, tls_verify: bool = True, authfile: str | None = None, referee: bool = False,
            log=print) -> list[Published]:
    """Copy every workload image to `registry` (with `referee`, upstream's e2e referee's too),
    one line of progress per step."""
    prefix = check_registry(registry)
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise HarnessError("skopeo is not installed", fix="apt-get install -y skopeo")
    todo = mirror.mirrored(Images(registry_prefix=prefix), referee=referee)
    if referee:
        host.ensure_packages(log, extra=stack_images.packages(("upstream-e2e",)))
    done = []
    with tempfile.TemporaryDirectory(prefix="pcf-publish-") as scratch:
        for n, image in enumerate(todo, 1):
            log(f"[{n}/{len(todo)}] {image.upstream} -> {image.pulled}")
            src = source(image.upstream, log)
            digest_file = Path(scratch) / f"{n}.digest"
            argv = [skopeo, "copy", "--retry-times=2", f"--dest-tls-verify={str(tls_verify).lower()}",
                    f"--digestfile={digest_file}", *([f"--dest-authfile={authfile}"] if authfile else []),
                    src, f"docker://{image.pulled}"]
            t0 = time.monotonic()
            try:
                run_tool(argv, timeout=COPY_TIMEOUT_S, what=f"pushing {image.pulled}")
            except ImageError as exc:
                raise HarnessError(str(exc), fix="check the registry address, your login (skopeo login, "
                                   "or --authfile) and, for a plain-HTTP registry, --dest-tls-verify=false") from None
            done.append(Published(image.upstream, image.pulled, digest_file.read_text().strip(),
                                  time.monotonic() - t0))
            log(f"[{n}/{len(todo)}] pushed {image.pulled}@{done[-1].digest} in {done[-1].seconds:.1f} s")
    log(f"published {len(done)} images; set images.registry_prefix: {prefix} in the profile to pull them")
    return done

"""The kind node image, built here: no node image can be pulled on these machines.

What upstream's node image is made of, assembled from what this machine can have: a Debian
root filesystem made by mmdebstrap (systemd, iptables, runc, the CNI plugins), kind's own node
files read from the kind module in the Go module cache (its entrypoint, systemd units,
containerd and kubelet settings), containerd, kubeadm, kubelet and kubectl of production's
Kubernetes release from the machine cache, and the image archives every node needs. Those
archives are imported into the node's containerd at boot, before the kubelet may start, so
kubeadm finds its control-plane images under the names it asks for. The image is tagged
with its Kubernetes release, as kind expects, and labelled with a digest of its inputs: an
unchanged input never rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from conformance.cluster import paths
from conformance.cluster.build import Program
from conformance.cluster.errors import HarnessError
from conformance.cluster.images import file_sha256

SUITE = "bookworm"
# What the node's own processes need (kind's base image installs the same set from Debian),
# plus runc and the CNI plugins, which upstream builds from source.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "ipset", "iproute2",
            "ethtool", "util-linux", "mount", "kmod", "libseccomp2", "pigz", "ca-certificates", "curl",
            "jq", "procps", "bash", "e2fsprogs", "runc", "containernetworking-plugins", "socat")
LABEL = "io.platform-conformance.inputs"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"   # the pause image of the stack list
ARCHIVE_DIR = "/kind/images"
# Limits of a node container: podman's default asks for more than root may set here
# (no CAP_SYS_RESOURCE), and the node's units may ask no more than the container has.
NOFILE, NPROC = 16384, 16384
TIMEOUTS = {"mmdebstrap": 900, "podman-import": 900, "podman-inspect": 30}

# Root lacks CAP_SYS_RESOURCE here: no unit may lower its OOM score or raise a hard limit
# above the container's, or systemd refuses to start it.
UNIT_LIMITS = f"""[Service]
OOMScoreAdjust=0
LimitNOFILE={NOFILE}
LimitNPROC={NPROC}
"""
# kubeadm restarts the kubelet once it has written its config; the images it will ask for
# must be in containerd by then.
PRELOAD_UNIT = f"""[Unit]
Description=Import the image archives this node image carries into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
Restart=on-failure
RestartSec=2
ExecStart=/bin/sh -euc 'for a in {ARCHIVE_DIR}/*.tar; do ctr --namespace=k8s.io images import --platform=linux/amd64 --local --snapshotter=overlayfs "$a"; done'

[Install]
WantedBy=multi-user.target
"""
KUBELET_AFTER_PRELOAD = """[Unit]
After=pcf-preload-images.service
Wants=pcf-preload-images.service
"""


def containerd_config(upstream: str, pause_image: str = PAUSE_IMAGE) -> str:
    """kind's containerd config with this machine's two differences: no negative OOM scores
    (root lacks CAP_SYS_RESOURCE; kind's entrypoint makes the same change for rootless nodes) and
    the pause image built here. Set in the image, not by kind's config patches, because kind
    restarts containerd to apply those while the node is importing its images."""
    changes = {"restrict_oom_score_adj = false": "restrict_oom_score_adj = true"}
    sandbox = re.search(r'sandbox_image = "[^"]*"', upstream)
    if sandbox:
        changes[sandbox.group(0)] = f'sandbox_image = "{pause_image}"'
    missing = [old for old in changes if old not in upstream] or ([] if sandbox else ["sandbox_image"])
    if missing:
        raise HarnessError(f"kind's images/base/files/etc/containerd/config.toml has no {', '.join(missing)}",
                           fix="kind changed its containerd config: update containerd_config in "
                               "conformance/cluster/kind_node.py for the pinned kind version")
    for old, new in changes.items():
        upstream = upstream.replace(old, new)
    return upstream


def image_name(k8s: Program) -> str:
    return f"localhost/platform-conformance/kind-node:{k8s.version}"


def kind_files(kind: Program) -> Path:
    """kind's node files (images/base/files) in the module cache."""
    return kind.source() / "images" / "base" / "files"


def rootfs(cache: Path | None = None, log=print) -> Path:
    """A Debian root filesystem as a tar, made once per package list."""
    key = hashlib.sha256(json.dumps([SUITE, PACKAGES]).encode()).hexdigest()[:16]
    target = (cache or paths.CACHE) / "kind" / f"debian-{SUITE}-{key}.tar"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"making the node's Debian {SUITE} root filesystem with mmdebstrap (about a minute)")
    partial = target.with_suffix(".partial.tar")
    _run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
          "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
          "--dpkgopt=path-exclude=/usr/share/locale/*", SUITE, str(partial)],
         TIMEOUTS["mmdebstrap"], "mmdebstrap")
    partial.rename(target)
    return target


def files(kind: Program, k8s: Program, kubeadm: Program, containerd: Program,
          archives: list[Path]) -> dict[str, Path | bytes]:
    """Everything added over the Debian root filesystem: in-image path -> host file or bytes."""
    base = kind_files(kind)
    out: dict[str, Path | bytes] = {}
    for source in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = source.relative_to(base)
        if rel.parts[0] in ("usr", "kind", "etc"):
            out[f"/{rel}"] = source
    for binary in ("containerd", "containerd-shim-runc-v2", "ctr"):
        out[f"/usr/local/bin/{binary}"] = containerd.binary(binary)
    out["/usr/bin/kubelet"] = k8s.binary("kubelet")
    for binary in ("kubeadm", "kubectl"):
        out[f"/usr/bin/{binary}"] = kubeadm.binary(binary)
    out["/etc/containerd/config.toml"] = containerd_config((base / "etc/containerd/config.toml").read_text()).encode()
    out["/kind/version"] = f"{k8s.version}\n".encode()
    out["/etc/systemd/system/containerd.service.d/10-pcf-limits.conf"] = UNIT_LIMITS.encode()
    out["/etc/systemd/system/kubelet.service.d/20-pcf-preload.conf"] = KUBELET_AFTER_PRELOAD.encode()
    out["/etc/systemd/system/pcf-preload-images.service"] = PRELOAD_UNIT.encode()
    for archive in archives:
        out[f"{ARCHIVE_DIR}/{archive.name}"] = archive
    return out


def inputs_digest(added: dict[str, Path | bytes], root: Path) -> str:
    document = [[path, file_sha256(v) if isinstance(v, Path) else hashlib.sha256(v).hexdigest()]
                for path, v in sorted(added.items())]
    return hashlib.sha256(json.dumps([root.name, document]).encode()).hexdigest()


def _inspect(name: str, template: str) -> str | None:
    proc = subprocess.run(["podman", "image", "inspect", "--format", template, name],
                          capture_output=True, text=True, timeout=TIMEOUTS["podman-inspect"], check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def built_digest(name: str) -> str | None:
    """The inputs digest of the image podman holds under `name`, or None."""
    return _inspect(name, f'{{{{index .Labels "{LABEL}"}}}}')


def build(kind: Program, k8s: Program, kubeadm: Program, containerd: Program, archives: list[Path],
          log=print) -> str:
    """The node image's name in podman's store, built unless its inputs are unchanged."""
    name = image_name(k8s)
    root = rootfs(log=log)
    added = files(kind, k8s, kubeadm, containerd, archives)
    digest = inputs_digest(added, root)
    if built_digest(name) == digest:
        return name
    log(f"building the kind node image {name} ({len(archives)} image archives inside)")
    previous = _inspect(name, "{{.Id}}")
    with tempfile.TemporaryDirectory(prefix="pcf-kind-node-", dir=paths.CACHE) as tmp:
        tree = Path(tmp) / "rootfs"
        tree.mkdir()
        _run(["tar", "-C", str(tree), "--xattrs", "--xattrs-include=*", "-xf", str(root)], 600, "unpacking the root filesystem")
        _assemble(tree, added, containerd)
        _run(["sh", "-c", f"tar -C {tree} --xattrs --xattrs-include='*' --numeric-owner -cf - . | "
              f"podman import --change 'ENTRYPOINT [\"/usr/local/bin/entrypoint\", \"/sbin/init\"]' "
              f"--change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' "
              f"--change 'LABEL {LABEL}={digest}' - {name}"],
             TIMEOUTS["podman-import"], "podman import of the node image")
    if previous and previous != _inspect(name, "{{.Id}}"):
        # The image it replaces, unless a node container still uses it.
        subprocess.run(["podman", "image", "rm", previous], capture_output=True, timeout=TIMEOUTS["podman-inspect"],
                       check=False)
    return name


def _assemble(tree: Path, added: dict[str, Path | bytes], containerd: Program) -> None:
    """Lay the added files over the root filesystem and do what kind's base image build does."""
    for where, what in added.items():
        dest = tree / where.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, Path):
            shutil.copyfile(what, dest)
        else:
            dest.write_bytes(what)
        executable = where.startswith(("/usr/local/bin/", "/usr/bin/", "/kind/bin/"))
        dest.chmod(0o755 if executable else 0o644)
    # Upstream's plugins live in /opt/cni/bin; Debian's in /usr/lib/cni.
    (tree / "opt/cni").mkdir(parents=True, exist_ok=True)
    (tree / "opt/cni/bin").symlink_to("/usr/lib/cni")
    (tree / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    # kind's base image: only the units it enables run, and the journal does not read kmsg.
    for wants in ("lib/systemd/system/multi-user.target.wants", "lib/systemd/system/local-fs.target.wants",
                  "lib/systemd/system/basic.target.wants", "etc/systemd/system/multi-user.target.wants"):
        for link in (tree / wants).glob("*"):
            link.unlink()
    for pattern in ("sysinit.target.wants/systemd-tmpfiles-setup.service", "sockets.target.wants/*udev*",
                    "sockets.target.wants/*initctl*"):
        for link in (tree / "lib/systemd/system").glob(pattern):
            link.unlink()
    with (tree / "etc/systemd/journald.conf").open("a") as conf:
        conf.write("ReadKMsg=no\n")
    enabled = tree / "etc/systemd/system/multi-user.target.wants"
    enabled.mkdir(parents=True, exist_ok=True)
    for unit in ("kubelet.service", "containerd.service", "undo-mount-hacks.service", "pcf-preload-images.service"):
        (enabled / unit).symlink_to(f"/etc/systemd/system/{unit}")
    (tree / "etc/systemd/system/systemd-binfmt.service").symlink_to("/dev/null")
    # kind's runtime spec: containerd's default with kind's mount hook and no rlimits.
    spec = json.loads(_run([str(containerd.binary("ctr")), "oci", "spec"], 30, "ctr oci spec"))
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    (tree / "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=2))


def _run(argv: list[str], timeout: float, what: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise HarnessError(f"{what}: {argv[0]} is not installed",
                           fix="run `nox -s cluster -- --provider kind`, which installs the host packages") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise HarnessError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:].strip()}")
    return proc.stdout

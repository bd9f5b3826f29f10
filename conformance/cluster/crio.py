"""CRI-O, production's runtime, as the local cluster's alternative to containerd.

Everything lives under the cluster's state and run folders (nothing in /etc or /var/lib/crio):
the configuration, containers/storage (overlay), the signature policy and the registries
configuration that lets the node pull from the local registry over plain HTTP. cgroupfs and
runc, as this machine's cgroup v1 needs; the infra container is dropped (pinns holds the pod's
namespaces), as CRI-O does by default. Images load through skopeo into containers-storage.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from conformance.cluster import paths, registry
from conformance.cluster.build import Program

ROOT = paths.STATE / "crio"
RUN = paths.RUN / "crio"
SOCKET = RUN / "crio.sock"
STORAGE_ROOT = ROOT / "storage"
STORAGE_RUNROOT = RUN / "storage"
POLICY = ROOT / "policy.json"
REGISTRIES = ROOT / "registries.conf"
REGISTRIES_DIR = ROOT / "registries.conf.d"
SKOPEO_TIMEOUT_S = 300
# Debian packages CRI-O needs at run time (its monitor and the image copier) and to build.
PACKAGES = {"conmon": "conmon", "skopeo": "skopeo", "pkg-config": "pkg-config", "make": "make",
            "/usr/include/seccomp.h": "libseccomp-dev", "/usr/include/gpgme.h": "libgpgme-dev"}
RUNC = "/usr/sbin/runc"
RUNTIME_WRAPPER = ROOT / "runc-restrict-oom"

# Root here lacks CAP_SYS_RESOURCE, so runc cannot write the negative oom_score_adj CRI-O gives
# pod sandboxes (-998) and the kubelet gives Guaranteed pods (-997). containerd clamps it itself
# (restrict_oom_score_adj); CRI-O has no such setting, so its runtime is runc behind this wrapper,
# which clamps a negative value to the runtime's own (0) in the bundle before `runc create`.
# This machine's cgroup v1 has no hugetlb hierarchy mounted, where CRI-O (unlike containerd)
# passes the kubelet's per-size hugepage limits on; runc cannot set them, so the wrapper drops
# them (no pod here asks for hugepages).
WRAPPER = f"""#!/usr/bin/python3 -S
import json, os, sys
args = sys.argv[1:]
if "create" in args:
    bundle = args[args.index("--bundle") + 1] if "--bundle" in args else "."
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    if (spec.get("process") or {{}}).get("oomScoreAdj", 0) < 0:
        spec["process"]["oomScoreAdj"] = 0
    ((spec.get("linux") or {{}}).get("resources") or {{}}).pop("hugepageLimits", None)
    with open(path, "w") as f:
        json.dump(spec, f)
os.execv("{RUNC}", ["{RUNC}", *args])
"""


def storage_reference(image: str) -> str:
    """skopeo's name for `image` in CRI-O's own containers-storage."""
    return f"containers-storage:[overlay@{STORAGE_ROOT}+{STORAGE_RUNROOT}]{image}"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config(crio: Program, pause_image: str, cni_conf: Path, cni_bin: Path) -> Path:
    """crio.conf for the local cluster."""
    _write(POLICY, json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    _write(RUNTIME_WRAPPER, WRAPPER).chmod(0o755)
    # A short name (upstream's manifests say rancher/local-path-provisioner) means Docker Hub, as
    # containerd reads it; the local registry answers over plain HTTP.
    REGISTRIES_DIR.mkdir(parents=True, exist_ok=True)
    _write(REGISTRIES, 'unqualified-search-registries = ["docker.io"]\n\n'
                       f'[[registry]]\nlocation = "{registry.ADDRESS}"\ninsecure = true\n')
    conf = f"""[crio]
root = "{STORAGE_ROOT}"
runroot = "{STORAGE_RUNROOT}"
storage_driver = "overlay"
log_dir = "{ROOT / 'pod-logs'}"
version_file = "{RUN / 'version'}"
version_file_persist = "{ROOT / 'version'}"
clean_shutdown_file = "{ROOT / 'clean.shutdown'}"

[crio.api]
listen = "{SOCKET}"

[crio.runtime]
default_runtime = "runc"
# What containerd's CRI does by default (enable_unprivileged_ports and _icmp): non-root pods such
# as CoreDNS bind ports below 1024 and ping without extra capabilities.
default_sysctls = ["net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ping_group_range=0 2147483647"]
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
selinux = false
container_exits_dir = "{RUN / 'exits'}"
container_attach_socket_dir = "{RUN}"
namespaces_dir = "{RUN / 'ns'}"
pinns_path = "{crio.binary('pinns')}"
hooks_dir = []

[crio.runtime.runtimes.runc]
runtime_path = "{RUNTIME_WRAPPER}"
runtime_type = "oci"
runtime_root = "{RUN / 'runc'}"
monitor_path = "/usr/bin/conmon"
monitor_cgroup = "pod"

[crio.image]
pause_image = "{pause_image}"
signature_policy = "{POLICY}"

[crio.network]
network_dir = "{cni_conf}/"
plugin_dirs = ["{cni_bin}/"]

[crio.metrics]
enable_metrics = false

[crio.nri]
enable_nri = false
"""
    return _write(ROOT / "crio.conf", conf)


def spec(crio: Program, pause_image: str, cni_conf: Path, cni_bin: Path) -> dict:
    """The supervised command line."""
    RUN.mkdir(parents=True, exist_ok=True)
    return {"name": paths.runtime_process("cri-o"), "log": str(paths.LOGS / "crio.log"),
            "env": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            # Its own registries configuration, not the host's /etc/containers (the flags are
            # CRI-O's hidden --registries-conf and --registries-conf-dir).
            "argv": [str(crio.binary("crio")), f"--config={config(crio, pause_image, cni_conf, cni_bin)}",
                     f"--registries-conf={REGISTRIES}", f"--registries-conf-dir={REGISTRIES_DIR}", "--log-level=warn"]}


def held_digest(name: str) -> str | None:
    """The manifest digest of the image CRI-O's storage holds as `name`; None when none."""
    found = subprocess.run(["skopeo", "inspect", "--raw", storage_reference(name)], capture_output=True,
                           timeout=SKOPEO_TIMEOUT_S)
    if found.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(found.stdout).hexdigest()


def load(archive: Path, names: tuple[str, ...]) -> None:
    """Copy an OCI archive into CRI-O's storage under each of `names`."""
    for name in names:
        subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", f"oci-archive:{archive}",
                        storage_reference(name)], check=True, capture_output=True, timeout=SKOPEO_TIMEOUT_S)


def remove(crictl: Path, name: str) -> None:
    """Take the name `name` off its image through the CRI (CRI-O removes the image with its last
    name only, so an image the stack loaded keeps its own name)."""
    endpoint = f"unix://{SOCKET}"
    subprocess.run([str(crictl), f"--runtime-endpoint={endpoint}", f"--image-endpoint={endpoint}", "rmi", name],
                   check=True, capture_output=True, timeout=SKOPEO_TIMEOUT_S)

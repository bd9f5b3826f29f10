"""CRI-O, production's runtime, as the local cluster's alternative to containerd.

Everything lives under the cluster's state and run folders (nothing in /etc or /var/lib/crio):
the configuration, containers/storage (overlay), the signature policy and the registries
configuration that lets the node pull from the local registry over plain HTTP. cgroupfs and
runc, as this machine's cgroup v1 needs; the infra container is dropped (pinns holds the pod's
namespaces), as CRI-O does by default. Images load through skopeo into containers-storage.
"""
from __future__ import annotations

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
SKOPEO_TIMEOUT_S = 300


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
    _write(REGISTRIES, f'[[registry]]\nlocation = "{registry.ADDRESS}"\ninsecure = true\n')
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
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
selinux = false
container_exits_dir = "{RUN / 'exits'}"
container_attach_socket_dir = "{RUN}"
namespaces_dir = "{RUN / 'ns'}"
pinns_path = "{crio.binary('pinns')}"
hooks_dir = []

[crio.runtime.runtimes.runc]
runtime_path = "/usr/sbin/runc"
runtime_type = "oci"
runtime_root = "{RUN / 'runc'}"
monitor_path = "/usr/bin/conmon"
monitor_cgroup = "pod"

[crio.image]
pause_image = "{pause_image}"
signature_policy = "{POLICY}"
insecure_registries = ["{registry.ADDRESS}"]

[crio.network]
network_dir = "{cni_conf}/"
plugin_dirs = ["{cni_bin}/"]

[crio.metrics]
enable_metrics = false
"""
    return _write(ROOT / "crio.conf", conf)


def spec(crio: Program, pause_image: str, cni_conf: Path, cni_bin: Path) -> dict:
    """The supervised command line."""
    RUN.mkdir(parents=True, exist_ok=True)
    return {"name": "crio", "log": str(paths.LOGS / "crio.log"),
            "env": {"CONTAINERS_REGISTRIES_CONF": str(REGISTRIES),
                    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            "argv": [str(crio.binary("crio")), f"--config={config(crio, pause_image, cni_conf, cni_bin)}",
                     "--log-level=warn"]}


def load(archive: Path, names: tuple[str, ...]) -> None:
    """Copy an OCI archive into CRI-O's storage under each of its names."""
    for name in names:
        subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{archive}", storage_reference(name)],
                       check=True, capture_output=True, timeout=SKOPEO_TIMEOUT_S)

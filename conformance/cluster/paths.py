"""Where the local cluster keeps its state, runtime files and the machine-wide build cache.

State is removed by `cluster-down`; the cache (built programs and images, keyed by version)
survives it so the next bring-up is warm.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
STATE = Path(os.environ.get("PCF_STATE", "/var/lib/platform-conformance/local"))
RUN = Path(os.environ.get("PCF_RUN", "/run/platform-conformance"))
CNI_CONF = Path("/etc/platform-conformance/cni/net.d")
CNI_BIN = Path("/usr/lib/cni")
CACHE = Path(os.environ.get("PCF_CACHE", Path.home() / ".cache" / "platform-conformance"))

PKI = STATE / "pki"
LOGS = STATE / "logs"
AUDIT_LOG = STATE / "audit.log"
SUPERVISOR_PID = STATE / "supervisor.pid"
SUPERVISOR_SPEC = STATE / "components.json"
HOLD = STATE / "hold"
BASELINE = STATE.parent / "baseline"
# The kind provider's state (conformance/cluster/kind.py): its config and kubeconfigs.
KIND_STATE = STATE.parent / "kind"
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
# containerd's config_path: one folder per registry, each with the hosts.toml it reads per pull.
REGISTRY_HOSTS = STATE / "containerd-hosts"


# Which container runtime the running cluster uses (containerd or cri-o), written by `up`.
RUNTIME_FILE = STATE / "runtime"
RUNTIMES = ("cri-o", "containerd")
DEFAULT_RUNTIME = "cri-o"  # production's


def runtime() -> str:
    """The running cluster's runtime; the default when none is recorded."""
    try:
        return RUNTIME_FILE.read_text().strip() or DEFAULT_RUNTIME
    except OSError:
        return DEFAULT_RUNTIME


def runtime_process(name: str | None = None) -> str:
    """The supervisor's name for the runtime's process (what `hold` and `release` take)."""
    return {"cri-o": "crio"}.get(name or runtime(), name or runtime())


def runtime_socket(name: str | None = None) -> Path:
    from conformance.cluster import crio  # noqa: PLC0415 - crio imports this module

    return crio.SOCKET if (name or runtime()) == "cri-o" else CONTAINERD_SOCK


def kubeconfig(user: str) -> Path:
    """The kubeconfig of one cluster identity (admin, reader, runner, kubelet, ...)."""
    return STATE / f"{user}.conf"

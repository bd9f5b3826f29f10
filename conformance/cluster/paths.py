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
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
# containerd's config_path: one folder per registry, each with the hosts.toml it reads per pull.
REGISTRY_HOSTS = STATE / "containerd-hosts"


def kubeconfig(user: str) -> Path:
    """The kubeconfig of one cluster identity (admin, reader, runner, kubelet, ...)."""
    return STATE / f"{user}.conf"

"""Runtime probes: what container runtime each node reports, and version comparison.

The kubelet reports its runtime as `<name>://<version>` (containerd://2.2.9, cri-o://1.33.1);
the profile names the runtime and a minimum version. Pod start, exec, logs, port-forward and
restarts are exercised through conformance.pods.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kubernetes import client as k8s

from conformance.probes.control_plane import nodes

# Names runtimes report for themselves, by the name a profile may use for them.
ALIASES = {"crio": "cri-o", "cri-o": "cri-o", "containerd": "containerd"}


@dataclass(frozen=True)
class NodeRuntime:
    node: str
    reported: str  # as the node reports it
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.node}: {self.reported}"


def runtimes(api: k8s.ApiClient) -> list[NodeRuntime]:
    return [NodeRuntime(n.name, n.runtime, ALIASES.get(n.runtime_name, n.runtime_name), n.runtime_version)
            for n in nodes(api).values()]


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numeric parts of a version: '2.2.9+unknown' -> (2, 2, 9), 'v1.33' -> (1, 33)."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)", version.strip())
    if not m:
        raise ValueError(f"{version!r} does not start with a version number")
    return tuple(int(p) for p in m.group(1).split("."))


def at_least(version: str, minimum: str) -> bool:
    have, want = version_tuple(version), version_tuple(minimum)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))


def same_runtime(reported: str, expected: str) -> bool:
    return ALIASES.get(reported.lower(), reported.lower()) == ALIASES.get(expected.lower(), expected.lower())


# --- who a container's processes run as ------------------------------------------------------

# Asks the shell exec starts and the container's main process (pid 1) for their ids: the two
# can differ if a runtime applies the pod's user to one and not the other.
IDENTITY_SCRIPT = "echo exec $(id -u) $(id -g); grep -E '^(Uid|Gid):' /proc/1/status"


@dataclass(frozen=True)
class ProcessIdentity:
    """The ids a container's processes run with: (uid, gid) of an exec'd shell, and pid 1's
    real, effective, saved and filesystem uids and gids."""

    exec_ids: tuple[int, int] | None
    main_uids: tuple[int, ...]
    main_gids: tuple[int, ...]
    raw: str


def parse_identity(text: str) -> ProcessIdentity:
    """Read IDENTITY_SCRIPT's output: `exec <uid> <gid>`, then /proc/1/status's Uid: and Gid: lines."""
    exec_ids, uids, gids = None, (), ()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "exec" and all(p.isdigit() for p in parts[1:]):
            exec_ids = (int(parts[1]), int(parts[2]))
        elif parts and parts[0] in ("Uid:", "Gid:") and all(p.isdigit() for p in parts[1:]):
            ids = tuple(int(p) for p in parts[1:])
            uids, gids = (ids, gids) if parts[0] == "Uid:" else (uids, ids)
    return ProcessIdentity(exec_ids, uids, gids, text)

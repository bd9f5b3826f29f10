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

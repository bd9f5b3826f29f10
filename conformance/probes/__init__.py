"""Probes: plain functions that look at the platform and return evidence.

Each probe returns a frozen dataclass holding what was asked, what came back, how long it took,
the raw output and where it ran from, so that a test's assertion compares real values and its
failure message shows them. Probes never import pytest and stay usable from a REPL:

    >>> from conformance import manifests
    >>> from conformance.probes import dns, workloads
    >>> api = manifests.api_client("/var/lib/platform-conformance/local/admin.conf")
    >>> probes = workloads.ProbeSet.read(api, "pcf-abcd1234-shared-core-x1y2")
    >>> dns.getent(api, probes.clients[0], "kubernetes.default", "4")

Modules: workloads (the shared probe pods and echo servers), dns, net (in-cluster traffic),
outside (traffic from the outside host), control_plane, runtime, cilium, causes (what a
failure of the core components is most likely due to).
"""

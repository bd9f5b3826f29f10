"""Cilium, read-only: the agent is ready on every node, the operator is up, every node has its
CiliumNode, and no endpoint has failed.

These checks only read (the suite never writes Cilium's objects or status), so they run in
read-only mode against a production cluster. They run only where the profile claims Cilium.
"""
from __future__ import annotations

import pytest

from conformance.probes import cilium, coverage
from conformance.probes.control_plane import nodes


@pytest.mark.cilium
@pytest.mark.promise("cilium/agent/ready-on-every-node")
def test_cilium_agent_is_ready_on_every_node(kube, profile):
    """The Cilium agent MUST run and be ready on every node of the cluster."""
    ns = profile.components.cilium.namespace
    found = cilium.agent(kube, ns)
    assert found.found, f"DaemonSet {ns}/{cilium.AGENT} does not exist"
    every = sorted(nodes(kube))
    covered = coverage.for_facts(profile.cluster.nodes, every).coverage(found.nodes_with_ready_agent)
    assert covered.gaps == (), f"{covered}\n" + "\n".join(found.not_ready)
    assert (sorted(found.nodes_with_ready_agent), found.not_ready) == (every, ()), \
        f"DaemonSet {ns}/{cilium.AGENT}: {found.ready} of {found.desired} ready"


@pytest.mark.cilium
@pytest.mark.promise("cilium/operator/available")
def test_cilium_operator_is_available(kube, profile):
    """The Cilium operator Deployment MUST have all of its replicas available."""
    ns = profile.components.cilium.namespace
    found = cilium.operator(kube, ns)
    assert found.found, f"Deployment {ns}/{cilium.OPERATOR} does not exist"
    assert found.available >= max(found.desired, 1), \
        f"Deployment {ns}/{cilium.OPERATOR}: {found.available} of {found.desired} replicas available"


@pytest.mark.cilium
@pytest.mark.promise("cilium/nodes/cilium-node-per-node")
def test_every_node_has_its_cilium_node(kube, profile):
    """Every node MUST have its CiliumNode, the state Cilium keeps for it (addresses, pod CIDRs)."""
    found, every = cilium.cilium_nodes(kube), tuple(sorted(nodes(kube)))
    covered = coverage.for_facts(profile.cluster.nodes, every).coverage(found)
    assert covered.gaps == (), str(covered)
    assert found == every, f"nodes without a CiliumNode: {sorted(set(every) - set(found))}; " \
                           f"CiliumNodes without a node: {sorted(set(found) - set(every))}"


@pytest.mark.cilium
@pytest.mark.promise("cilium/endpoints/none-failed")
def test_no_cilium_endpoint_has_failed(kube):
    """No CiliumEndpoint MUST be failed or stuck short of ready, and every running pod on the pod network MUST have one.

    An `invalid` endpoint fails at once; one that is not ready (not-ready, disconnected, ...), or
    a pod without an endpoint, fails if it is still so after the endpoints_ready timeout, since
    endpoints of new pods pass through those states.
    """
    health = cilium.endpoint_health(kube)
    assert health.stuck == {}, str(health)

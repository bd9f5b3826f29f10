"""A per-node promise never passes on an empty or partial set of probes, on the real cluster.

The profile names a node the cluster does not have (`--set cluster.nodes=...`): every per-node
promise must fail and name it, and the cross-node promise, with two nodes named, must fail
instead of skipping. With a profile that names no node on a cluster whose only node is there,
the promises still run from the cluster's own nodes.
"""
from __future__ import annotations

import pytest

from tests.integration.core_runs import run_suites

GHOST = "pcf-ghost"
SUITES = ["suites/test_runtime.py", "suites/test_networking.py", "suites/test_dns.py", "suites/test_control_plane.py"]
# One or two promises of each kind: asked through probe pods, echo pods, both, and read from the API.
SELECTION = ("exec_in_running or logs_are_readable or expected_runtime or same_node or another_node "
             "or service_cluster_ip or (service_fqdn and glibc) or expected_node_is_ready or kubelet_versions")
PER_NODE = ["runtime/pods/exec", "runtime/pods/logs", "runtime/nodes/expected-runtime",
            "networking/pod-to-pod/same-node", "networking/pod-to-pod/cross-node", "networking/service/cluster-ip",
            "dns/resolve/service-fqdn", "control-plane/nodes/ready", "control-plane/nodes/kubelet-skew"]


@pytest.mark.usefixtures("free_lease")
def test_a_named_node_the_cluster_lacks_fails_each_per_node_promise_by_name(tmp_path):
    run = run_suites(SUITES, tmp_path / "reports", keyword=SELECTION,
                     extra=("--set", f"cluster.nodes=[pcf-node,{GHOST}]"))
    got = {p: (run.outcomes(p), all(GHOST in (r["reason"] or "") for r in run.promises.get(p, [])))
           for p in PER_NODE}
    assert got == {p: ({"failed"}, True) for p in PER_NODE}, run.output
    assert run.exit_code == 1, run.output


@pytest.mark.usefixtures("free_lease")
def test_with_no_node_named_the_cluster_nodes_are_still_asked(tmp_path):
    run = run_suites(["suites/test_runtime.py"], tmp_path / "reports", keyword="exec_in_running or logs_are_readable",
                     extra=("--set", "cluster.nodes=[]"))
    assert {p: run.outcomes(p) for p in ("runtime/pods/exec", "runtime/pods/logs")} == {
        "runtime/pods/exec": {"passed"}, "runtime/pods/logs": {"passed"}}, run.output

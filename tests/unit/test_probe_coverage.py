"""The nodes a per-node promise must be proven from: an empty or partial set never passes."""
from __future__ import annotations

from pathlib import Path

import yaml

from conformance.pods import PodView
from conformance.probes import coverage
from conformance.probes.control_plane import NodeFacts
from conformance.probes.workloads import ProbeSet

ROOT = Path(__file__).resolve().parents[2]


def node(name, ready="True", taints=(), unschedulable=False):
    return NodeFacts(name, ready, "KubeletReady: ok" if ready == "True" else "NodeStatusUnknown: Kubelet stopped posting",
                     unschedulable, tuple(taints), "v1.36.1", "containerd://2.2.9", ("10.0.0.1",), 10250, ())


def pod(name, on, ready=True):
    return PodView("ns", name, on, "Running", ready, ("10.244.0.5",), 0, "" if ready else "Ready=False")


def cluster(*nodes):
    return {n.name: n for n in nodes}


def test_an_empty_set_of_answers_is_not_proof():
    expected = coverage.for_probes(["a", "b"], cluster(node("a"), node("b")))
    found = expected.coverage([])
    assert not found.complete
    assert found.gaps == ("node a: expected, but nothing was asked or answered there",
                          "node b: expected, but nothing was asked or answered there")


def test_no_expected_node_at_all_is_a_gap_not_a_pass():
    found = coverage.for_probes([], {}).coverage([])
    assert found.gaps == (coverage.NO_NODE,)
    assert "not proven on any node" in str(found)


def test_a_partial_set_names_the_node_left_out():
    found = coverage.for_probes(["a", "b"], cluster(node("a"), node("b"))).coverage(["a"])
    assert (found.asked, found.gaps) == (("a",), ("node b: expected, but nothing was asked or answered there",))


def test_a_profile_node_the_cluster_lacks_fails_by_name():
    found = coverage.for_probes(["a", "ghost"], cluster(node("a"))).coverage(["a"])
    assert found.gaps == ("node ghost: the cluster has no node ghost",)
    assert str(found).splitlines()[:2] == ["not proven on node ghost: the cluster has no node ghost",
                                           "  node ghost: the cluster has no node ghost"]


def test_the_first_line_names_every_node_left_out_and_why():
    found = coverage.for_probes(["a", "ghost"], cluster(node("a"))).coverage([])
    assert (found.missing, str(found).splitlines()[0]) == (("a", "ghost"), (
        "not proven on node a: expected, but nothing was asked or answered there; "
        "node ghost: the cluster has no node ghost"))


def test_extra_answers_are_kept_and_do_not_fill_a_gap():
    found = coverage.for_probes(["a"], cluster(node("a"), node("c", ready="False"))).coverage(["a", "c", "z"])
    assert (found.gaps, found.extra) == ((), ("c", "z"))
    assert found.passed_over == ("node c: not Ready (Ready=False: NodeStatusUnknown: Kubelet stopped posting); "
                                 "not named by the profile",)


def test_unnamed_nodes_the_probes_run_on_are_expected_too():
    expected = coverage.for_probes(["a"], cluster(node("a"), node("b")))
    assert expected.askable == ("a", "b")
    assert expected.coverage(["a"]).gaps == ("node b: expected, but nothing was asked or answered there",)


def test_a_named_node_that_is_not_ready_or_tainted_fails_even_if_it_answered():
    nodes = cluster(node("a"), node("b", ready="Unknown", taints=["node.kubernetes.io/unreachable=:NoExecute"]),
                    node("c", taints=["dedicated=gpu:NoSchedule"]))
    found = coverage.for_probes(["a", "b", "c"], nodes).coverage(["a", "b", "c"])
    assert found.gaps == (
        "node b: not Ready (Ready=Unknown: NodeStatusUnknown: Kubelet stopped posting)",
        "node c: tainted dedicated=gpu:NoSchedule, which the probe pods do not tolerate")


def test_control_plane_and_prefer_no_schedule_taints_do_not_keep_probes_off():
    nodes = cluster(node("cp", taints=["node-role.kubernetes.io/control-plane=:NoSchedule"]),
                    node("w", taints=["soft=x:PreferNoSchedule"]), node("cordoned", unschedulable=True,
                    taints=["node.kubernetes.io/unschedulable=:NoSchedule"]))
    expected = coverage.for_probes([], nodes)
    assert expected.askable == ("cordoned", "cp", "w")


def test_the_probe_daemonsets_tolerate_what_the_coverage_says_they_do():
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/probes/shared.yaml").read_text()) if d]
    for ds in (d for d in docs if d["kind"] == "DaemonSet"):
        keys = {t["key"] for t in ds["spec"]["template"]["spec"].get("tolerations", [])}
        assert keys <= coverage.TOLERATED_TAINTS, ds["metadata"]["name"]
        assert "node-role.kubernetes.io/control-plane" in keys, ds["metadata"]["name"]


def test_facts_cover_the_profile_nodes_and_every_cluster_node():
    assert coverage.for_facts(["a", "ghost"], ["a", "b"]).coverage(["a", "b"]).gaps == (
        "node ghost: the cluster has no node ghost",)
    assert coverage.for_facts(["a"], ["a", "b"], every=False).coverage(["a"]).gaps == ()
    assert coverage.for_facts([], [], every=False).coverage([]).gaps == (coverage.NO_NODE,)


def probe_set(profile_nodes, nodes, clients=(), servers=()):
    return ProbeSet("ns", tuple(clients), tuple(servers), {}, tuple(profile_nodes), nodes)


def test_probe_set_names_a_missing_or_unready_pod():
    probes = probe_set(["a", "b", "c"], cluster(node("a"), node("b"), node("c")),
                       clients=[pod("probe-a", "a"), pod("probe-b", "b", ready=False)],
                       servers=[pod("echo-a", "a"), pod("echo-b", "b"), pod("echo-c", "c")])
    assert [c.name for c in probes.ready_clients()] == ["probe-a"]
    assert probes.coverage(probes.ready_clients(), "probe").gaps == (
        "node b: probe pod ns/probe-b on b is not ready: Running; Ready=False",
        "node c: no probe pod runs on it")
    assert [s.name for s in probes.ready_servers()] == ["echo-a", "echo-b", "echo-c"]
    assert probes.nodes == ("a",)


def test_probe_set_with_no_pods_and_no_nodes_does_not_pass():
    probes = probe_set([], {})
    assert probes.ready_clients() == ()
    assert probes.missing() == [coverage.NO_NODE]
    assert probes.coverage([], "probe").gaps == (coverage.NO_NODE,)


def test_probe_set_after_a_node_went_not_ready_names_it():
    # Probes were placed, then the node went NotReady and got the not-ready taint.
    probes = probe_set(["a"], cluster(node("a", ready="False", taints=["node.kubernetes.io/not-ready=:NoSchedule"])),
                       clients=[pod("probe-a", "a")], servers=[pod("echo-a", "a")])
    assert probes.ready_clients() == ()
    assert probes.missing() == [
        "node a: not Ready (Ready=False: NodeStatusUnknown: Kubelet stopped posting)"]

"""The container runtime on each node: the expected runtime and version, pods start, exec, logs,
port-forward and restarts work, and Pod Security `restricted` holds.

Exec, logs and port-forward go to the shared probe and echo pods, one per schedulable node, so a
node whose runtime fails shows up by name; pod start, restart and admission use a test namespace
of their own (Pod Security `restricted`, like every test namespace).
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance import pods
from conformance.probes import coverage, runtime
from conformance.probes.workloads import ECHO_PORT, render

# A user and group the probe image does not run as by itself (it runs as nobody, 65534).
ASKED_UID, ASKED_GID = 4321, 4322


@pytest.mark.runtime
@pytest.mark.promise("runtime/nodes/expected-runtime")
def test_every_node_runs_the_expected_runtime_version(kube, profile):
    """Every node MUST report the runtime the profile names, at or above its minimum version."""
    claim = profile.components.runtime
    found = runtime.runtimes(kube)
    covered = coverage.for_facts(profile.cluster.nodes, [r.node for r in found]).coverage(
        r.node for r in found if r.reported)
    assert covered.gaps == (), str(covered)
    got = {r.node: (runtime.same_runtime(r.name, claim.name), runtime.at_least(r.version, claim.min_version))
           for r in found}
    assert got == {r.node: (True, True) for r in found}, \
        f"profile: {claim.name} >= {claim.min_version}; nodes report: " + ", ".join(str(r) for r in found)


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/pods/start")
def test_new_pod_starts_and_becomes_ready(kube, profile, namespace, record_measurement):
    """A new pod MUST be scheduled, started and Ready within the pod_ready timeout.

    The time to Running and to Ready is measured.

    The pod is not pinned to a node, so a cluster with no schedulable node fails here with the
    scheduler's reason.
    """
    [manifest] = render("client", profile.images, NAME="start", ROLE="start")
    started = pods.start_pod(kube, namespace, manifest)
    record_measurement("pod start to Running", started.running_s, "s")
    record_measurement("pod start to Ready", started.ready_s, "s")
    assert started.pod.ready, started


def _each(probes, kind: str):
    """The ready pod of `kind` ("probe" or "echo") on every expected node; a node without one fails by name."""
    expected = probes.expected(kind)
    picked = [(probes.client_on if kind == "probe" else probes.server_on)(node) for node in expected.askable]
    covered = expected.coverage(p.node for p in picked)
    assert covered.gaps == (), str(covered)
    return picked


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/pods/exec")
def test_exec_in_running_container_returns_output(kube, probes):
    """A command run with exec in a running container MUST return its output and exit code."""
    clients = _each(probes, "probe")
    results = {c.where: pods.exec_in(kube, c.namespace, c.name, ["sh", "-c", "id -u; exit 7"]) for c in clients}
    got = {where: (r.stdout.strip(), r.exit_code) for where, r in results.items()}
    assert got == {where: ("65534", 7) for where in results}, {w: r.stderr for w, r in results.items()}


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/pods/logs")
def test_container_logs_are_readable(kube, probes):
    """A container's log MUST be readable through the API, with what the container wrote."""
    servers = _each(probes, "echo")
    got = {s.where: "Started HTTP server" in pods.logs(kube, s.namespace, s.name) for s in servers}
    assert got == {s.where: True for s in servers}, "agnhost writes 'Started HTTP server' when it starts"


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/pods/port-forward")
def test_port_forward_reaches_container_port(kube, probes):
    """Port-forward MUST carry a TCP exchange to a container's port and back."""
    servers = _each(probes, "echo")
    replies = {s.where: pods.http_through_port_forward(kube, s.namespace, s.name, ECHO_PORT) for s in servers}
    got = {w: (r.status, r.body.strip()) for w, r in replies.items()}
    assert got == {s.where: (200, s.name) for s in servers}, replies


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/pods/restart")
def test_crashing_container_is_restarted(kube, profile, namespace):
    """A container that exits with an error MUST be started again, its previous run's log still readable."""
    [manifest] = render("crasher", profile.images, NAME="crasher")
    k8s.CoreV1Api(kube).create_namespaced_pod(namespace, manifest)
    previous = pods.previous_run(kube, namespace, "crasher")
    assert "pcf-crasher started" in (previous.log or ""), \
        f"{previous.pod.where}: {previous.pod.why}; previous log: {previous.log!r}; kubelet: {previous.error}"


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/security/non-root")
def test_restricted_pod_runs_as_non_root(kube, profile, namespace):
    """A pod admitted under Pod Security `restricted` MUST run its process as the non-root user it asks for.

    The uid and gid asked for are not the image's own user (nobody, 65534), so only a runtime that
    applies the pod's securityContext passes; the container's main process and an exec'd shell
    are both checked.
    """
    [manifest] = render("client", profile.images, NAME="nonroot", ROLE="nonroot")
    manifest["spec"]["securityContext"].update(runAsUser=ASKED_UID, runAsGroup=ASKED_GID)
    started = pods.start_pod(kube, namespace, manifest)
    result = pods.exec_in(kube, namespace, "nonroot", ["sh", "-c", runtime.IDENTITY_SCRIPT])
    found = runtime.parse_identity(result.stdout)
    assert (found.exec_ids, found.main_uids, found.main_gids) == (
        (ASKED_UID, ASKED_GID), (ASKED_UID,) * 4, (ASKED_GID,) * 4), f"{started.where}: {result}"


@pytest.mark.runtime
@pytest.mark.writes
@pytest.mark.promise("runtime/security/privileged-refused")
def test_privileged_pod_is_refused_in_restricted_namespace(kube, profile, namespace):
    """A privileged pod MUST be refused at admission in a namespace that enforces Pod Security `restricted`."""
    [manifest] = render("privileged", profile.images, NAME="privileged")
    with pytest.raises(k8s.ApiException) as refused:
        k8s.CoreV1Api(kube).create_namespaced_pod(namespace, manifest)
    assert (refused.value.status, "violates PodSecurity" in (refused.value.body or "")) == (403, True), \
        refused.value.body
